// Package shell quotes words for a POSIX shell, with one rule for the
// command lines sent over SSH and those written to build logs to be
// pasted back.
package shell

import "strings"

// Quote returns s as one word for a POSIX shell. A word made only of
// characters no shell treats specially (ASCII letters and digits and
// @%+=:,./_-) is returned as it is, so logged command lines stay readable;
// anything else, the empty word included, is put in single quotes, where
// a single quote of s closes them, stands escaped by a backslash, and
// opens them again.
func Quote(s string) string {
	if s != "" && strings.IndexFunc(s, special) < 0 {
		return s
	}
	return quote(s)
}

func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// special says whether the shell may read r as anything but itself.
func special(r rune) bool {
	switch {
	case 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z', '0' <= r && r <= '9':
		return false
	}
	return !strings.ContainsRune("@%+=:,./_-", r)
}

// Join quotes each word and joins them with spaces: a command line that
// runs words as its argv. A first word with "=" in it is quoted even when
// plain, or the shell would take it for a variable assignment.
func Join(words []string) string {
	q := make([]string, len(words))
	for i, w := range words {
		q[i] = Quote(w)
		if i == 0 && q[i] == w && strings.Contains(w, "=") {
			q[i] = quote(w)
		}
	}
	return strings.Join(q, " ")
}

// Line is the command line that runs argv with env (NAME=value entries,
// as in exec.Cmd.Env) added to the environment: the assignments, with
// each value quoted, then Join(argv). An entry whose name the shell
// cannot assign is quoted whole.
func Line(env, argv []string) string {
	words := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if name, value, ok := strings.Cut(kv, "="); ok && isName(name) {
			words = append(words, name+"="+Quote(value))
		} else {
			words = append(words, Quote(kv))
		}
	}
	if cmd := Join(argv); cmd != "" {
		words = append(words, cmd)
	}
	return strings.Join(words, " ")
}

// isName says whether s is a shell variable name.
func isName(s string) bool {
	for i, r := range s {
		if !(r == '_' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || i > 0 && '0' <= r && r <= '9') {
			return false
		}
	}
	return s != ""
}
