package components

import (
	"fmt"
	"strconv"
	"strings"
)

// goToolchain returns the GOTOOLCHAIN a tree needs: "local" when the local
// go (as `go env GOVERSION` says, e.g. go1.26.8) satisfies the tree's go
// and toolchain lines, else the go release the tree asks for, which the go
// command fetches as the module golang.org/toolchain through the module
// proxy. Old trees (go 1.12) build with today's go: the go line is a
// minimum.
func goToolchain(local, goLine, toolchainLine string) (string, error) {
	have, ok := parseGoVersion(strings.TrimPrefix(local, "go"))
	if !ok {
		return "", fmt.Errorf("cannot read the local go version %q", local)
	}
	need := goLine
	if tc := strings.TrimPrefix(toolchainLine, "go"); tc != "" && tc != "default" && lessGo(need, tc) {
		need = tc
	}
	if need == "" {
		return "local", nil
	}
	want, ok := parseGoVersion(need)
	if !ok {
		return "", fmt.Errorf("go.mod asks for go %q, which is not a go version", need)
	}
	if have.less(want) {
		// Since go 1.21 "1.N" is a language version and releases are
		// 1.N.0, 1.N.1...: ask for a release.
		if want.minor >= 21 && want.pre == "" && strings.Count(need, ".") == 1 {
			need += ".0"
		}
		return "go" + need, nil
	}
	return "local", nil
}

// goVersion is a go release: 1.N[.P] with an optional rcN/betaN.
type goVersion struct {
	major, minor, patch int
	pre                 string // "rc1", "beta2"; "" for a release
}

func parseGoVersion(s string) (goVersion, bool) {
	var v goVersion
	num := s
	if i := strings.IndexAny(s, "abcdefghijklmnopqrstuvwxyz"); i >= 0 {
		num, v.pre = s[:i], s[i:]
		if !strings.HasPrefix(v.pre, "rc") && !strings.HasPrefix(v.pre, "beta") {
			return v, false
		}
	}
	parts := strings.Split(num, ".")
	if len(parts) < 2 || len(parts) > 3 {
		return v, false
	}
	nums := make([]int, 3)
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return v, false
		}
		nums[i] = n
	}
	v.major, v.minor, v.patch = nums[0], nums[1], nums[2]
	if len(parts) == 2 && v.pre == "" {
		// "1.21" is below "1.21rc1" below "1.21.0": a missing patch is
		// the lowest of the minor.
		v.patch = -2
	} else if len(parts) == 2 {
		v.patch = -1
	}
	return v, true
}

func (a goVersion) less(b goVersion) bool {
	if a.major != b.major {
		return a.major < b.major
	}
	if a.minor != b.minor {
		return a.minor < b.minor
	}
	if a.patch != b.patch {
		return a.patch < b.patch
	}
	// A pre-release comes before the release.
	return a.pre != "" && (b.pre == "" || a.pre < b.pre)
}

// lessGo compares go versions as strings; an unreadable one is lowest.
func lessGo(a, b string) bool {
	va, oka := parseGoVersion(a)
	vb, okb := parseGoVersion(b)
	switch {
	case !okb:
		return false
	case !oka:
		return true
	}
	return va.less(vb)
}
