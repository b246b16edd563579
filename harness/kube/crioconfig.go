package kube

import (
	"fmt"
	"strings"
)

// Pinning is what a CRI-O's effective configuration says about namespace
// pinning, read from `crio config`.
type Pinning struct {
	// Switch is the setting that turns pinning on or off
	// (manage_ns_lifecycle, or manage_network_ns_lifecycle on 1.16); ""
	// when this CRI-O has none: it pins always (1.24 and later).
	Switch string
	// Pins says whether sandboxes get a pinned netns (a bind mount under
	// the namespaces dir, gone after a reboot) rather than the ephemeral
	// /proc/<infra pid>/ns/net.
	Pins bool
}

// String says it as the expectation it gives.
func (p Pinning) String() string {
	if p.Switch == "" {
		return "CRI-O has no pinning switch: it always pins namespaces"
	}
	return fmt.Sprintf("%s = %v", p.Switch, p.Pins)
}

// pinSwitches are CRI-O's pinning settings, newest first: 1.17 to 1.23
// print both (manage_network_ns_lifecycle deprecated and commented out),
// 1.16 only the older one.
var pinSwitches = []string{"manage_ns_lifecycle", "manage_network_ns_lifecycle"}

// ParsePinning reads the output of `crio config` (TOML, comments
// included): the first pinning setting that is not commented out decides.
func ParsePinning(crioConfig string) (Pinning, error) {
	values := map[string]string{}
	for _, line := range strings.Split(crioConfig, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		values[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	for _, sw := range pinSwitches {
		v, ok := values[sw]
		if !ok {
			continue
		}
		switch v {
		case "true":
			return Pinning{Switch: sw, Pins: true}, nil
		case "false":
			return Pinning{Switch: sw, Pins: false}, nil
		}
		return Pinning{}, fmt.Errorf("crio config: %s = %s is neither true nor false", sw, v)
	}
	if !strings.Contains(crioConfig, "[crio.runtime]") {
		return Pinning{}, fmt.Errorf("crio config printed no [crio.runtime] table: is it CRI-O's config? %q", firstLines(crioConfig, 3))
	}
	// No switch: CRI-O 1.24 and later always pin.
	return Pinning{Pins: true}, nil
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}
