// Package cnirecord is the recording CNI plugin (cmd/cnirecord): a plugin
// that changes nothing and writes down, for each command a runtime runs
// through it, what the runtime passed and who held the PID its netns path
// names at that instant. It exists for `pidreuse odds`, which must know who
// held an old sandbox's PID *when the runtime's DEL ran*, not a minute
// later when the harness gets to look.
package cnirecord

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

var procNetns = regexp.MustCompile(`^/proc/(\d+)/ns/net$`)

// NetnsPID returns the PID an ephemeral netns path names, or 0.
func NetnsPID(netns string) int {
	m := procNetns.FindStringSubmatch(netns)
	if m == nil {
		return 0
	}
	pid, _ := strconv.Atoi(m[1])
	return pid
}

// Observe builds the record of one command: the kernel's counters first
// (so ns_last_pid is as close as it gets to the runtime's own moment), then
// the holder of the path's PID and of each watched PID. What cannot be
// read is said in Error; the record is made anyway.
func (p Proc) Observe(now time.Time, command, containerID, netns, ifName string, watch []int) agentapi.CNIRecord {
	r := agentapi.CNIRecord{At: now.UTC(), Command: command, ContainerID: containerID, Netns: netns, IfName: ifName}
	var errs []string
	c, err := p.Counters()
	if err != nil {
		errs = append(errs, err.Error())
	}
	r.NsLastPID, r.Forks, r.PIDMax, r.UptimeSec, r.BootID = c.NsLastPID, c.Forks, c.PIDMax, c.UptimeSec, c.BootID
	if r.HostLoUp, err = p.HostLoUp(); err != nil {
		errs = append(errs, err.Error())
	}
	if pid := NetnsPID(netns); pid > 0 {
		h := p.Holder(pid)
		r.Holder = &h
	}
	for _, pid := range watch {
		r.Watched = append(r.Watched, p.Holder(pid))
	}
	r.Error = strings.Join(errs, "; ")
	return r
}

// ReadWatch reads the watch file: PIDs separated by white space. A missing
// file watches nothing.
func ReadWatch(path string) ([]int, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("watch file: %w", err)
	}
	var pids []int
	for _, w := range strings.Fields(string(data)) {
		pid, err := strconv.Atoi(w)
		if err != nil || pid <= 0 {
			return pids, fmt.Errorf("watch file %s: %q is not a PID", path, w)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// Append writes r as one JSON line at the end of path. One write on an
// O_APPEND file: records of DELs the runtime runs in parallel do not
// interleave.
func Append(path string, r agentapi.CNIRecord) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("record: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("record: %w", err)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("record %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("record %s: %w", path, err)
	}
	return nil
}
