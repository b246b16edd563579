package agent

import (
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// nsfsMagic is NSFS_MAGIC: what statfs reports for a /proc/<pid>/ns/* file
// or a bind mount of one. A plain file at a netns path is not a netns.
const nsfsMagic = 0x6e736673

// HostNetnsInode is the inode of the node's own network namespace, taken
// from PID 1 (systemd in a VM, the node's init in a sandbox).
func HostNetnsInode() (uint64, error) { return netnsInode("/proc/1/ns/net") }

func netnsInode(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// ClassifyNetns says what a netns path names right now; it is recorded just
// before a plugin runs, so a report shows what DEL actually entered.
func ClassifyNetns(path string) (agentapi.NetnsTarget, error) {
	if path == "" {
		return agentapi.TargetEmpty, nil
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ESRCH) {
			return agentapi.TargetMissing, nil
		}
		return "", fmt.Errorf("statfs %s: %w", path, err)
	}
	if sfs.Type != nsfsMagic {
		return agentapi.TargetNotNS, nil
	}
	ino, err := netnsInode(path)
	if err != nil {
		return "", err
	}
	host, err := HostNetnsInode()
	if err != nil {
		return "", err
	}
	if ino == host {
		return agentapi.TargetHost, nil
	}
	return agentapi.TargetOther, nil
}
