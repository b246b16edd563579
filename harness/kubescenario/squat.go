package kubescenario

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pidreuse/pidreuse/harness/kube"
	"github.com/pidreuse/pidreuse/node/agentapi"
)

// Squat is the judged result of pidreuse-squat.service: which host
// process held each of the previous boot's container PIDs before the
// runtime started.
type Squat struct {
	// Holders names, per PID in the order asked, the process that holds
	// it: "nodeagent hold" for one the squat started, or the boot-time
	// process that already had it.
	Holders []string
}

// String lists "PID (holder)" pairs.
func (s Squat) String() string { return strings.Join(s.Holders, ", ") }

// JudgeSquat reads the squat unit's result file and the unit states of
// squat and runtime (kube.Units, in that order) and says whether host
// processes held every one of pids before the runtime started. An error
// means the scenario cannot judge the runtime: no verdict.
func JudgeSquat(result []byte, pids []int, squatUnit, runtimeUnit kube.Unit) (Squat, error) {
	var s Squat
	var got agentapi.Squat
	if err := json.Unmarshal(result, &got); err != nil {
		return s, fmt.Errorf("squat result %q: %w", strings.TrimSpace(string(result)), err)
	}
	if len(got.Missed) > 0 {
		return s, fmt.Errorf("host processes could not take every container PID, so the scenario cannot judge the runtime: %+v", got.Missed)
	}
	taken := map[int]string{}
	for _, r := range got.Taken {
		if r.IsHostNetns {
			taken[r.PID] = r.HeldBy
		}
	}
	for _, pid := range pids {
		by, ok := taken[pid]
		if !ok {
			return s, fmt.Errorf("PID %d was not taken by a host process: %s", pid, strings.TrimSpace(string(result)))
		}
		if by == "" {
			by = "nodeagent hold"
		}
		s.Holders = append(s.Holders, fmt.Sprintf("%d (%s)", pid, by))
	}
	done, started := squatUnit.ExecMainExitMono, runtimeUnit.ExecMainStartMono
	if done == 0 || started == 0 || done > started {
		return s, fmt.Errorf("the PIDs must be taken before %s starts: %s done at %d µs, %s started at %d µs",
			runtimeUnit.Name, squatUnit.Name, done, runtimeUnit.Name, started)
	}
	return s, nil
}
