// Command cnirecord is a CNI plugin that records and changes nothing: put
// last in a network list (so it runs first on DEL), it appends one JSON
// line per command to its recordFile — CNI_NETNS, who held the PID that
// path names at that instant (comm, netns, start time since boot), the
// kernel's ns_last_pid and fork count, the host's lo, and the PIDs of its
// watchFile — and returns success (on ADD, the previous plugins' result).
// `pidreuse odds` installs it in CRI-O's plugin dir as pidreuse-record; the
// runtime runs it through its own libcni like any other plugin. See
// node/cnirecord.
//
//	{"type": "pidreuse-record", "recordFile": "/var/lib/pidreuse/odds/cni-record.jsonl", "watchFile": "/var/lib/pidreuse/odds/watch-pids"}
package main

import (
	"os"
	"time"

	"github.com/pidreuse/pidreuse/node/cnirecord"
)

func main() {
	os.Exit(cnirecord.Run(cnirecord.EnvFrom(os.Getenv), os.Stdin, os.Stdout, os.Stderr, cnirecord.Host, time.Now))
}
