package components

import (
	"strings"
	"time"
)

// crioStamp is what a CRI-O build stamps into the binary, as CRI-O's
// Makefile does from git: the commit, whether the tree was dirty, and the
// build date (here the commit's date when known, so rebuilds are alike).
type crioStamp struct {
	commit string // "" when unknown: the variable keeps its default
	dirty  bool
	date   time.Time
}

// crioStampValue returns the value for the -X of variable name (as
// "importpath.var" or a bare var name), and whether CRI-O's Makefiles ever
// set that variable.
func crioStampValue(name string, s crioStamp) (string, bool) {
	v := name[strings.LastIndex(name, ".")+1:]
	switch v {
	case "gitCommit", "buildCommit":
		// 1.16/1.17 have no tree state: their Makefile appends -dirty.
		if s.dirty && s.commit != "" && strings.HasPrefix(name, "main.") {
			return s.commit + "-dirty", true
		}
		return s.commit, true
	case "gitTreeState":
		if s.commit == "" {
			return "", true
		}
		if s.dirty {
			return "dirty", true
		}
		return "clean", true
	case "buildDate":
		if s.date.IsZero() {
			return "", true
		}
		return s.date.UTC().Format("2006-01-02T15:04:05Z"), true
	}
	return "", false
}

// crioTreeLDFlags strips the binary, as every CRI-O Makefile does, and
// sets each of the tree's version variables that has a value.
func crioTreeLDFlags(stamps []string, s crioStamp) string {
	flags := []string{"-s", "-w"}
	for _, name := range stamps {
		if v, ok := crioStampValue(name, s); ok && v != "" {
			flags = append(flags, "-X", name+"="+v)
		}
	}
	return strings.Join(flags, " ")
}
