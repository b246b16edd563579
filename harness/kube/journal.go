package kube

import (
	"fmt"
	"regexp"
	"strings"
	"time"
)

// The journal lines the CRI-O scenarios judge, as pure functions of the
// journal text (testdata/ holds real journals from VM runs). CRI-O logs
// through logrus, which quotes a message that contains quotes: the
// journal shows \" for ", so every pattern accepts both.

// quote matches a double quote as logrus may have escaped it.
const quote = `\\?"`

// RestoreFailedLine finds CRI-O's line for a sandbox it could not restore
// at start-up because a pinned namespace of it is gone:
//
//	Could not restore sandbox <id>: failed to Statfs "<pin>": no such file or directory       (1.19+)
//	could not restore sandbox <id> container <id>: failed to Statfs "<pin>": no such file…    (1.17, 1.18)
//
// pin is the pinned netns path when CRI-O reported it; "" accepts any of
// its pins (/var/run/netns, ipcns, utsns: 1.17 names the first it finds
// gone, and does not report them over CRI). It returns the matched text,
// or "".
func RestoreFailedLine(journal, sandboxID, pin string) string {
	path := `/(?:var/)?run/\w+/[\w-]+`
	if pin != "" {
		path = regexp.QuoteMeta(pin)
	}
	id := regexp.QuoteMeta(sandboxID)
	re := regexp.MustCompile(`[Cc]ould not restore sandbox ` + id + `(?: container ` + id + `)?: failed to Statfs ` +
		quote + path + quote + `: no such file or directory`)
	return re.FindString(journal)
}

// DeletedWithEmptyNetns says whether CRI-O ran the CNI DEL of a pod's old
// sandbox with no netns path at all (what CRI-O >= 1.19 does for a sandbox
// whose pin is gone): its "Got pod network" line with an empty NetNS, and
// its "Deleting pod <ns>_<name> from CNI network" line.
func DeletedWithEmptyNetns(journal, namespace, name, sandboxID string) bool {
	got := regexp.MustCompile(`Got pod network &\{Name:` + regexp.QuoteMeta(name) + ` Namespace:\S+ ID:` +
		regexp.QuoteMeta(sandboxID) + ` UID:\S+ NetNS: Networks:`)
	return got.MatchString(journal) && strings.Contains(journal, "Deleting pod "+namespace+"_"+name+" from CNI network")
}

// LivenessGrep finds kubelet's lines for failed probes in the node (grep
// -E), so a chatty journal does not cross SSH: kubelet 1.34 logs
// `"Probe failed" probeType="Liveness" …`, kubelet 1.17 `Liveness probe
// for "<pod>:<container>" failed`, both from --v=1 up (the image runs
// kubelet with --v=2).
const LivenessGrep = `Probe failed|Liveness probe for`

var liveness117 = regexp.MustCompile(`Liveness probe for "[^"]*:([^":]+)" failed`)

// LivenessFailures keeps the lines of kubelet's journal that say a
// liveness probe of container failed.
func LivenessFailures(kubeletJournal, container string) []string {
	var out []string
	for _, line := range strings.Split(kubeletJournal, "\n") {
		structured := strings.Contains(line, "Probe failed") && strings.Contains(line, `probeType="Liveness"`) &&
			strings.Contains(line, `containerName="`+container+`"`)
		m := liveness117.FindStringSubmatch(line)
		if structured || (m != nil && m[1] == container) {
			out = append(out, line)
		}
	}
	return out
}

// journalStamp is the layout of a short-precise journal line's time.
const journalStamp = "Jan 02 15:04:05.000000"

// LineTime is the time of a short-precise journal line, on the node's
// wall clock (that of CRI's CreatedAt).
func LineTime(line string, clock Clock) (time.Time, error) {
	if len(line) < len(journalStamp) {
		return time.Time{}, fmt.Errorf("journal line without a time: %q", line)
	}
	return clock.JournalTime(line[:len(journalStamp)])
}

// CreatedAfter says whether a container of that name was created after t
// (the node's wall clock): kubelet's restart after a failure it logged at t.
func CreatedAfter(cs []Container, name string, t time.Time) bool {
	for _, c := range cs {
		if c.Name == name && c.CreatedAt.After(t) {
			return true
		}
	}
	return false
}
