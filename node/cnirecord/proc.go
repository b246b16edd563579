package cnirecord

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// userHZ is the unit of /proc/<pid>/stat's times: fixed at 100 by the
// kernel's ABI on every architecture the guest runs (x86-64), whatever the
// kernel's own HZ.
const userHZ = 100

// Proc reads the node's state from its /proc and /sys; tests point the
// roots at fake trees.
type Proc struct {
	ProcRoot string // "/proc"
	SysRoot  string // "/sys"
}

// Host is the node's own /proc and /sys.
var Host = Proc{ProcRoot: "/proc", SysRoot: "/sys"}

func (p Proc) path(parts ...string) string {
	return filepath.Join(append([]string{p.ProcRoot}, parts...)...)
}

func (p Proc) readTrim(parts ...string) (string, error) {
	data, err := os.ReadFile(p.path(parts...))
	return strings.TrimSpace(string(data)), err
}

func (p Proc) readInt(parts ...string) (int, error) {
	s, err := p.readTrim(parts...)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// Holder says who holds pid now. A PID nobody holds is Exists false and
// no error; a holder that vanishes while it is read keeps what was read.
// Thread IDs resolve like PIDs: /proc/<tid> exists (it is only left out of
// the directory listing), and a thread of kubelet holds a PID as surely as
// a process does.
func (p Proc) Holder(pid int) agentapi.PIDHolder {
	h := agentapi.PIDHolder{PID: pid}
	id := strconv.Itoa(pid)
	stat, err := p.readTrim(id, "stat")
	if err != nil {
		return h
	}
	h.Exists = true
	h.Comm, _ = p.readTrim(id, "comm")
	if ppid, start, ok := parseStat(stat); ok {
		h.PPID, h.StartSec = ppid, float64(start)/userHZ
	}
	if status, err := p.readTrim(id, "status"); err == nil {
		h.TGID = statusField(status, "Tgid")
	}
	if h.TGID != 0 && h.TGID != pid {
		h.TGIDComm, _ = p.readTrim(strconv.Itoa(h.TGID), "comm")
	} else {
		h.TGIDComm = h.Comm
	}
	h.NetnsInode = p.netnsInode(id)
	if host := p.netnsInode("1"); host != 0 && h.NetnsInode == host {
		h.HostNetns = true
	}
	if cg, err := p.readTrim(id, "cgroup"); err == nil {
		h.Cgroup = systemdCgroup(cg)
	}
	return h
}

// netnsInode reads /proc/<id>/ns/net ("net:[4026531840]"); 0 when it
// cannot.
func (p Proc) netnsInode(id string) uint64 {
	link, err := os.Readlink(p.path(id, "ns", "net"))
	if err != nil {
		return 0
	}
	s := strings.TrimSuffix(strings.TrimPrefix(link, "net:["), "]")
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// parseStat reads ppid and starttime (fields 4 and 22) from
// /proc/<pid>/stat. The comm field may hold spaces and parentheses, so
// fields are counted from its closing parenthesis.
func parseStat(stat string) (ppid int, start int64, ok bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): field n is f[n-3].
	if len(f) < 20 {
		return 0, 0, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseInt(f[19], 10, 64)
	return ppid, start, err1 == nil && err2 == nil
}

func statusField(status, key string) int {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, key+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSpace(v))
			return n
		}
	}
	return 0
}

// systemdCgroup picks the path that says what the task belongs to: the
// name=systemd hierarchy on cgroup v1, the unified one on v2.
func systemdCgroup(cgroup string) string {
	var unified string
	for _, line := range strings.Split(cgroup, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[1] == "name=systemd":
			return parts[2]
		case parts[0] == "0" && parts[1] == "":
			unified = parts[2]
		}
	}
	return unified
}

// Counters are the kernel's PID counters at one instant.
type Counters struct {
	NsLastPID, Forks, PIDMax int
	UptimeSec                float64
	BootID                   string
}

// Counters reads ns_last_pid, the fork count, pid_max, the uptime and the
// boot ID; the error names every file it could not read.
func (p Proc) Counters() (Counters, error) {
	var c Counters
	var errs []string
	var err error
	if c.NsLastPID, err = p.readInt("sys", "kernel", "ns_last_pid"); err != nil {
		errs = append(errs, err.Error())
	}
	if c.PIDMax, err = p.readInt("sys", "kernel", "pid_max"); err != nil {
		errs = append(errs, err.Error())
	}
	if c.BootID, err = p.readTrim("sys", "kernel", "random", "boot_id"); err != nil {
		errs = append(errs, err.Error())
	}
	if up, err := p.readTrim("uptime"); err != nil {
		errs = append(errs, err.Error())
	} else if f := strings.Fields(up); len(f) > 0 {
		c.UptimeSec, _ = strconv.ParseFloat(f[0], 64)
	}
	if stat, err := p.readTrim("stat"); err != nil {
		errs = append(errs, err.Error())
	} else {
		for _, line := range strings.Split(stat, "\n") {
			if v, ok := strings.CutPrefix(line, "processes "); ok {
				c.Forks, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
	}
	if len(errs) > 0 {
		return c, fmt.Errorf("read counters: %s", strings.Join(errs, "; "))
	}
	return c, nil
}

// HostLoUp reads the IFF_UP bit of lo in the caller's netns, from sysfs
// (mounted in the host's netns, where the runtime runs its plugins).
func (p Proc) HostLoUp() (bool, error) {
	data, err := os.ReadFile(filepath.Join(p.SysRoot, "class", "net", "lo", "flags"))
	if err != nil {
		return false, fmt.Errorf("read lo flags: %w", err)
	}
	flags, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimSpace(string(data)), "0x"), 16, 32)
	if err != nil {
		return false, fmt.Errorf("lo flags %q: %w", data, err)
	}
	return flags&0x1 != 0, nil
}
