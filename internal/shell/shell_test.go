package shell

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

func TestQuote(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"go", "go"},
		{"-trimpath", "-trimpath"},
		{"--mode=root", "--mode=root"},
		{"/usr/local/bin/crio", "/usr/local/bin/crio"},
		{"user@host:1,2%x+y_z", "user@host:1,2%x+y_z"},
		{"", "''"},
		{"a b", "'a b'"},
		{"it's", `'it'\''s'`},
		{"'", `''\'''`},
		{"$HOME", "'$HOME'"},
		{"~root", "'~root'"},
		{"*.go", "'*.go'"},
		{"a\nb", "'a\nb'"},
		{`back\slash`, `'back\slash'`},
		{"a;b", "'a;b'"},
		{"!x", "'!x'"},
		{"é", "'é'"}, // not ASCII: quoted rather than trusted
	} {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestJoin(t *testing.T) {
	for _, c := range []struct {
		words []string
		want  string
	}{
		{nil, ""},
		{[]string{"systemctl", "reboot"}, "systemctl reboot"},
		{[]string{"go", "build", "-ldflags", "-X a.b=it's", "./x"}, `go build -ldflags '-X a.b=it'\''s' ./x`},
		{[]string{"sh", "-c", "echo $1", "--", ""}, "sh -c 'echo $1' -- ''"},
		{[]string{"A=b", "A=b"}, "'A=b' A=b"}, // a command named A=b, not an assignment
	} {
		if got := Join(c.words); got != c.want {
			t.Errorf("Join(%q) = %s, want %s", c.words, got, c.want)
		}
	}
}

func TestLine(t *testing.T) {
	for _, c := range []struct {
		env, argv []string
		want      string
	}{
		{nil, []string{"go", "version"}, "go version"},
		{[]string{"GOFLAGS=-mod=mod -buildvcs=false", "CGO_ENABLED=0", "GOFLAGS="}, []string{"go", "build"},
			"GOFLAGS='-mod=mod -buildvcs=false' CGO_ENABLED=0 GOFLAGS='' go build"},
		{[]string{"a.b=c", "=x", "1A=x"}, []string{"true"}, "a.b=c =x 1A=x true"},
		{[]string{"A=1"}, nil, "A=1"},
	} {
		if got := Line(c.env, c.argv); got != c.want {
			t.Errorf("Line(%q, %q) = %s, want %s", c.env, c.argv, got, c.want)
		}
	}
}

// What the shell reads back is what was quoted.
func TestRoundTripThroughSh(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	words := []string{"printf", `%s\0`, "plain", "", "a b", "it's", "$HOME", "`id`", "~", "*", "a\nb", `\`, "A=b", "é", "--x=y"}
	out, err := exec.Command(sh, "-c", Join(words)).Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00"); !slices.Equal(got, words[2:]) {
		t.Errorf("sh read back %q, want %q", got, words[2:])
	}
	env := []string{"X=it's $HOME", "Y="}
	out, err = exec.Command(sh, "-c", Line(env, []string{"sh", "-c", `printf '%s|%s' "$X" "$Y"`})).Output()
	if err != nil || string(out) != "it's $HOME|" {
		t.Errorf("env through sh: %q, %v", out, err)
	}
}
