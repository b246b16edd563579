package kube

import (
	"regexp"
	"strings"
)

// CNIOp is one CNI operation CRI-O ran, read from its journal: what it
// ran, for which sandbox, with which netns path, on whose behalf, and the
// error it logged for it.
type CNIOp struct {
	// Time is the journal's timestamp (short-precise).
	Time string
	// Op is ADD, DEL or CHECK.
	Op                        string
	Pod, Namespace, SandboxID string
	NetNS                     string
	// By is the CRI request for this sandbox that was in flight when CRI-O
	// ran the operation ("StopPodSandbox": kubelet stopping the old
	// sandbox; "RemovePodSandbox"), or "" when none was: CRI-O acting on
	// its own, as at its start-up restore. It needs CRI-O's debug log
	// (requests are logged only there); without it every op reads "".
	By string
	// Error is the error CRI-O logged for the operation, if any.
	Error string
	// RequestsLogged says the journal shows CRI requests at all (CRI-O's
	// debug level): without them By cannot tell kubelet from CRI-O.
	RequestsLogged bool
}

// Issuer says in words who issued the operation.
func (o CNIOp) Issuer() string {
	if !o.RequestsLogged {
		return "unknown (CRI-O's log level shows no CRI requests)"
	}
	if o.By == "" {
		return "CRI-O itself (no CRI request for the sandbox in flight)"
	}
	return "kubelet's " + o.By + " through CRI-O"
}

var (
	journalMsg   = regexp.MustCompile(`^(\S+ \S+ \S+) .*?msg="((?:[^"\\]|\\.)*)"`)
	podNetwork   = regexp.MustCompile(`Got pod network &\{Name:(\S+) Namespace:(\S+) ID:(\S+) (?:UID:\S+ )?NetNS:(\S*) Networks:`)
	criRequest   = regexp.MustCompile(`(?i)^request: &(\w+)Request\{PodSandboxId:(\w+),`)
	anyRequest   = regexp.MustCompile(`(?i)^request: &\w+Request\{`)
	criResponse  = regexp.MustCompile(`(?i)^response: &(\w+)Response\{`)
	requestID    = regexp.MustCompile(` id=([0-9a-f-]{36})(?:\s|$)`)
	opByMessage  = []struct{ prefix, op string }{{"About to del CNI network", "DEL"}, {"Deleting pod ", "DEL"}, {"About to check CNI network", "CHECK"}, {"About to add CNI network", "ADD"}, {"Adding pod ", "ADD"}}
	errorLevel   = regexp.MustCompile(`level=error `)
	cniErrorHint = []string{"Error deleting network", "failed to Statfs", "error checking", "Error while", "failed to"}
)

// ParseCNIOps reads a CRI-O journal (journalctl -o short-precise, any
// CRI-O from 1.16 on) into the CNI operations CRI-O ran, in order.
//
// CRI-O logs each operation in two lines: "Got pod network" (sandbox,
// netns) and then the operation ("About to del CNI network", no sandbox;
// CRI-O 1.34: "Deleting pod <ns>_<name> from CNI network"). When kubelet
// stops several sandboxes at once the pairs interleave (Got A, Got B, del,
// del), so each operation takes a "Got" line of its own: the pod it names,
// or else the oldest one still waiting. Each sandbox then has its own DEL
// with its own netns. Their errors come later, in whatever order the DELs
// end: an error line that quotes a DEL's netns path (`failed to Statfs
// "/proc/N/ns/net"`) belongs to that DEL; one that quotes none goes to the
// latest operation.
func ParseCNIOps(journal string) []CNIOp {
	var ops []CNIOp
	inflight := map[string]string{}  // sandbox ID → CRI method
	bySandbox := map[string]string{} // request ID → sandbox ID
	// Got lines waiting for their operation, oldest first; last is the Got
	// line of the latest operation, for a second network of the same pod.
	requests := anyRequest.MatchString
	logged := false
	var pending []CNIOp
	var last *CNIOp
	// CRI-O 1.17's ocicni sets lo down in the netns before it logs the
	// DEL, and logs a failure of that first: it belongs to the next DEL.
	var loopbackErr string
	for _, line := range strings.Split(journal, "\n") {
		m := journalMsg.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		at, msg := m[1], strings.ReplaceAll(m[2], `\"`, `"`)
		reqID := ""
		if r := requestID.FindStringSubmatch(line); r != nil {
			reqID = r[1]
		}
		logged = logged || requests(msg)
		if r := criRequest.FindStringSubmatch(msg); r != nil {
			inflight[r[2]] = r[1]
			if reqID != "" {
				bySandbox[reqID] = r[2]
			}
			continue
		}
		if criResponse.MatchString(msg) && reqID != "" {
			if sb, ok := bySandbox[reqID]; ok {
				delete(inflight, sb)
				delete(bySandbox, reqID)
			}
			continue
		}
		if p := podNetwork.FindStringSubmatch(msg); p != nil {
			got := CNIOp{Time: at, Pod: p[1], Namespace: p[2], SandboxID: p[3], NetNS: p[4]}
			// A newer line for the same sandbox replaces one that never
			// got its operation (a status read).
			pending = append(withoutSandbox(pending, got.SandboxID), got)
			continue
		}
		for _, o := range opByMessage {
			if !strings.HasPrefix(msg, o.prefix) {
				continue
			}
			var op CNIOp
			var ok bool
			if pending, op, ok = takeGot(pending, msg); ok {
				last = &op
			} else if last != nil {
				op = *last
			} else {
				break
			}
			op.Op, op.By = o.op, inflight[op.SandboxID]
			if op.Op == "DEL" {
				op.Error, loopbackErr = loopbackErr, ""
			}
			ops = append(ops, op)
			break
		}
		if errorLevel.MatchString(line) && strings.Contains(msg, "tearing down loopback interface") {
			loopbackErr = msg
			continue
		}
		if len(ops) > 0 && errorLevel.MatchString(line) && isCNIError(msg) {
			i := opNamedBy(ops, msg)
			if i < 0 {
				i = len(ops) - 1
			}
			// The first error line of an operation says most; later ones
			// (CRI-O logs the same failure two or three times) repeat it.
			if ops[i].Error == "" {
				ops[i].Error = msg
			}
		}
	}
	for i := range ops {
		ops[i].RequestsLogged = logged
	}
	return ops
}

// isCNIError says whether an error line is about a CNI operation.
func isCNIError(msg string) bool {
	for _, hint := range cniErrorHint {
		if strings.Contains(msg, hint) {
			return true
		}
	}
	return false
}

// opNamedBy is the index of the newest operation whose netns path msg
// quotes, or -1. Seen with CRI-O 1.16: kubelet stopped two
// sandboxes at once, and the Statfs error of the first DEL (its PID was
// free) was logged after the second DEL had started.
func opNamedBy(ops []CNIOp, msg string) int {
	for i := len(ops) - 1; i >= 0; i-- {
		if ops[i].NetNS != "" && strings.Contains(msg, `"`+ops[i].NetNS+`"`) {
			return i
		}
	}
	return -1
}

// opPod reads the pod CRI-O 1.34 names in its operation line ("Deleting
// pod default_web-pidreuse-node from CNI network …").
var opPod = regexp.MustCompile(`^(?:Deleting|Adding) pod ([^_\s]+)_(\S+) (?:from|to) CNI network`)

// takeGot takes the Got line an operation line belongs to: the newest for
// the pod the line names, else the oldest waiting.
func takeGot(pending []CNIOp, msg string) ([]CNIOp, CNIOp, bool) {
	if len(pending) == 0 {
		return pending, CNIOp{}, false
	}
	i := 0
	if m := opPod.FindStringSubmatch(msg); m != nil {
		for j := len(pending) - 1; j >= 0; j-- {
			if pending[j].Namespace == m[1] && pending[j].Pod == m[2] {
				i = j
				break
			}
		}
	}
	got := pending[i]
	return append(pending[:i:i], pending[i+1:]...), got, true
}

func withoutSandbox(pending []CNIOp, id string) []CNIOp {
	out := pending[:0:0]
	for _, p := range pending {
		if p.SandboxID != id {
			out = append(out, p)
		}
	}
	return out
}

// DelsOf returns the DEL operations of one sandbox.
func DelsOf(ops []CNIOp, sandboxID string) []CNIOp {
	var out []CNIOp
	for _, o := range ops {
		if o.Op == "DEL" && o.SandboxID == sandboxID {
			out = append(out, o)
		}
	}
	return out
}
