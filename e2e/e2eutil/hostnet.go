package e2eutil

import (
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
)

// HostNet is the real machine's network state as this test process sees
// it: its netns and its lo. Nothing pidreuse does may change either.
type HostNet struct {
	NetnsInode uint64
	LoUp       bool
	LoFlags    string
}

// ReadHostNet reads the state of the netns this process runs in.
func ReadHostNet() (HostNet, error) {
	var h HostNet
	var st syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &st); err != nil {
		return h, fmt.Errorf("stat own netns: %w", err)
	}
	h.NetnsInode = st.Ino
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return h, fmt.Errorf("read real lo: %w", err)
	}
	h.LoUp = lo.Attrs().Flags&net.FlagUp != 0
	h.LoFlags = lo.Attrs().Flags.String()
	return h, nil
}

// Leftovers lists processes running binary (by /proc/*/exe), so a suite
// can assert that no node outlived its test.
func Leftovers(binary string) []string {
	entries, _ := os.ReadDir("/proc")
	var out []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		exe, err := os.Readlink("/proc/" + e.Name() + "/exe")
		if err != nil {
			continue
		}
		if strings.TrimSuffix(exe, " (deleted)") == binary {
			cmdline, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// Mounts is this process's mount table, to compare before and after. It is
// the raw text, not parsed (github.com/moby/sys/mountinfo, as images and
// clean use): any difference at all, a remount in place or a new mount ID,
// must fail the comparison, and a parse would only drop detail.
func Mounts() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	return string(data), err
}
