package odds

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// ParseRecords reads the recorder's file (one agentapi.CNIRecord per line)
// and keeps the records of one boot ("" keeps all). A line that does not
// parse (a record cut short by the reboot) is skipped and counted.
func ParseRecords(data, bootID string) (recs []agentapi.CNIRecord, skipped int) {
	for _, line := range strings.Split(data, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		var r agentapi.CNIRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			skipped++
			continue
		}
		if bootID == "" || r.BootID == bootID {
			recs = append(recs, r)
		}
	}
	return recs, skipped
}

// DelsOf returns the DEL records of one sandbox, in the order they ran.
func DelsOf(recs []agentapi.CNIRecord, sandboxID string) []agentapi.CNIRecord {
	var out []agentapi.CNIRecord
	for _, r := range recs {
		if r.Command == "DEL" && r.ContainerID == sandboxID {
			out = append(out, r)
		}
	}
	return out
}

// Adds counts the ADD records: each sandbox CRI-O set up through the
// recorder. None at all means the recorder is not in CRI-O's network list.
func Adds(recs []agentapi.CNIRecord) int {
	n := 0
	for _, r := range recs {
		if r.Command == "ADD" {
			n++
		}
	}
	return n
}

// describeHolder says who held a PID: "kubelet (thread of kubelet 1200,
// host netns, started 22.0 s after boot, /system.slice/kubelet.service)".
func describeHolder(h *agentapi.PIDHolder) string {
	if h == nil || !h.Exists {
		return "nobody"
	}
	who := h.Comm
	if h.TGID != 0 && h.TGID != h.PID {
		who += fmt.Sprintf(" (thread of %s %d)", h.TGIDComm, h.TGID)
	}
	ns := "a pod's netns"
	if h.HostNetns {
		ns = "host netns"
	}
	s := fmt.Sprintf("%s, %s, started %.1f s after boot", who, ns, h.StartSec)
	if h.Cgroup != "" {
		s += ", " + h.Cgroup
	}
	return s
}
