package kube

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/pidreuse/pidreuse/harness"
)

// Unit is what systemd says of one unit.
type Unit struct {
	Name     string
	State    string // ActiveState: active, activating, failed, ...
	Restarts int    // NRestarts
	// ExecMainStartMono and ExecMainExitMono are the monotonic times (µs
	// since boot) the unit's main process started and exited; 0 when it
	// has not.
	ExecMainStartMono int64
	ExecMainExitMono  int64
	// ActiveEnterMono is when the unit last became active (for a
	// Type=notify service such as crio: when it said it was ready).
	ActiveEnterMono int64
}

// unitProps are the properties Units asks systemd for, in the order
// `systemctl show` prints them for each unit.
var unitProps = []string{"Id", "ActiveState", "NRestarts", "ExecMainStartTimestampMonotonic", "ExecMainExitTimestampMonotonic", "ActiveEnterTimestampMonotonic"}

// Units asks the node's systemd about units.
func Units(ctx context.Context, n harness.Node, units ...string) ([]Unit, error) {
	argv := []string{"systemctl", "show", "--property=" + strings.Join(unitProps, ",")}
	argv = append(argv, units...)
	res, err := n.Exec(ctx, argv...)
	if err != nil {
		return nil, err
	}
	if res.ExitCode != 0 {
		return nil, fmt.Errorf("systemctl show %s: exit %d: %s", strings.Join(units, " "), res.ExitCode, strings.TrimSpace(string(res.Stderr)))
	}
	return ParseUnits(string(res.Stdout))
}

// ParseUnits reads `systemctl show --property=…` output: KEY=VALUE lines,
// one block per unit, blocks separated by an empty line.
func ParseUnits(out string) ([]Unit, error) {
	var units []Unit
	for _, block := range strings.Split(strings.TrimSpace(out), "\n\n") {
		if strings.TrimSpace(block) == "" {
			continue
		}
		var u Unit
		for _, line := range strings.Split(block, "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
			if !ok {
				return nil, fmt.Errorf("systemctl show: line %q is not KEY=VALUE", line)
			}
			var err error
			switch k {
			case "Id":
				u.Name = strings.TrimSuffix(v, ".service")
			case "ActiveState":
				u.State = v
			case "NRestarts":
				u.Restarts, err = atoiOrZero(v)
			case "ExecMainStartTimestampMonotonic":
				u.ExecMainStartMono, err = atoi64OrZero(v)
			case "ExecMainExitTimestampMonotonic":
				u.ExecMainExitMono, err = atoi64OrZero(v)
			case "ActiveEnterTimestampMonotonic":
				u.ActiveEnterMono, err = atoi64OrZero(v)
			}
			if err != nil {
				return nil, fmt.Errorf("systemctl show: %s=%q: %w", k, v, err)
			}
		}
		if u.Name == "" {
			return nil, fmt.Errorf("systemctl show: a block without Id: %q", block)
		}
		units = append(units, u)
	}
	return units, nil
}

func atoiOrZero(s string) (int, error) {
	if s == "" || s == "[not set]" {
		return 0, nil
	}
	return strconv.Atoi(s)
}

func atoi64OrZero(s string) (int64, error) {
	if s == "" || s == "[not set]" {
		return 0, nil
	}
	return strconv.ParseInt(s, 10, 64)
}

// UnitRestartLimit is how many restarts make a unit "failing": crio and
// kubelet restart on failure every 2 s, and neither restarts at all when
// healthy.
const UnitRestartLimit = 3

// Failing says whether any of units keeps failing and, if so, which one to
// blame: the first one (the runtime, when units are given runtime first)
// unless it is active, for then the others fail for reasons of their own
// rather than for want of it.
func Failing(units []Unit) (blame Unit, failing bool) {
	for _, u := range units {
		failing = failing || u.Restarts >= UnitRestartLimit || u.State == "failed"
	}
	if !failing || len(units) == 0 {
		return Unit{}, false
	}
	blame = units[0]
	if blame.State == "active" {
		for _, u := range units[1:] {
			if u.Restarts >= UnitRestartLimit || u.State == "failed" {
				return u, true
			}
		}
	}
	return blame, true
}

// FailingMessage words a failing unit for a user who is bisecting: which
// units are in which state, whom to blame and the end of its journal.
func FailingMessage(units []Unit, blame Unit, journalTail string) string {
	var states []string
	for _, u := range units {
		states = append(states, fmt.Sprintf("%s.service %s after %d restarts", u.Name, u.State, u.Restarts))
	}
	return fmt.Sprintf("%s: is the %s under test a working build for this node? %s.service's journal ends:\n%s",
		strings.Join(states, ", "), blame.Name, blame.Name, strings.TrimSpace(journalTail))
}

// JournalTail returns the last lines of a unit's journal of this boot.
func JournalTail(ctx context.Context, n harness.Node, unit string, lines int) (string, error) {
	res, err := n.Exec(ctx, "journalctl", "-b", "0", "-u", unit, "-n", strconv.Itoa(lines), "--no-pager", "-o", "cat")
	if err != nil {
		return "", err
	}
	return string(res.Stdout), nil
}
