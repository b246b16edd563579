// Package runner plays a scenario on a node: the write-up's timeline as
// agent steps, with one reboot that several scenarios can share.
package runner

import (
	"time"

	"github.com/pidreuse/pidreuse/scenarios"
)

// Event is one step of a scenario's timeline.
type Event struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	Detail string    `json:"detail,omitempty"`
}

// Result is one scenario's outcome. Verdict fields are only meaningful
// when Error is empty; a non-empty Error means no verdict.
type Result struct {
	Scenario string `json:"scenario"`
	Tier     string `json:"tier"`
	Node     string `json:"node"`
	// Profile is the CRI-O node profile the scenario ran on, if any.
	Profile string `json:"profile,omitempty"`
	// Runtime is the CRI-O under test as it names itself, if any.
	Runtime          string `json:"runtime,omitempty"`
	PluginVersion    string `json:"pluginVersion"`
	NetnsMode        string `json:"netnsMode"`
	NetnsPath        string `json:"netnsPath"`
	HolderPID        int    `json:"holderPID"`
	BootIDBefore     string `json:"bootIDBefore"`
	BootIDAfter      string `json:"bootIDAfter"`
	PIDReused        bool   `json:"pidReused"`
	PIDReuseAttempts int    `json:"pidReuseAttempts,omitempty"`
	FirstDelError    string `json:"firstDelError,omitempty"`
	DelTarget        string `json:"delTarget"`
	DelError         string `json:"delError"`
	LoUp             bool   `json:"loUp"`
	ExpectedLoUp     bool   `json:"expectedLoUp"`
	ProbeWhileDown   string `json:"probeWhileDown,omitempty"`
	Restored         bool   `json:"restored,omitempty"`
	// ForeignJoin (join-race) says a container the runtime started joined
	// namespaces of a process that is not its pod's — the bug of
	// containerd#5630; ExpectedForeignJoin is what the runtime under test
	// makes the scenario expect. Joins are the namespaces compared.
	ForeignJoin         bool            `json:"foreignJoin,omitempty"`
	ExpectedForeignJoin bool            `json:"expectedForeignJoin,omitempty"`
	Joins               []NamespaceJoin `json:"joins,omitempty"`
	// Dels are the CNI DELs of the old sandboxes as the runtime's journal
	// shows them (the CRI-O scenarios): path, issuer, error.
	Dels []Del `json:"dels,omitempty"`
	// Checks are what the scenario expects besides host lo (see
	// scenarios.Scenario.Checks), each with what was seen. Pass needs
	// them all.
	Checks     []Check `json:"checks"`
	Pass       bool    `json:"pass"`
	Error      string  `json:"error,omitempty"`
	DurationMs int64   `json:"durationMs"`
	// Phases say where a VM scenario's time went (CRI-O/kubelet nodes).
	Phases   *Phases `json:"phases,omitempty"`
	Timeline []Event `json:"timeline"`
}

// NamespaceJoin is one namespace of a container the runtime started, next
// to its pod's (the pause's, before it died) and the host's.
type NamespaceJoin struct {
	Type      string `json:"type"`
	Pod       string `json:"pod"`
	Host      string `json:"host"`
	Container string `json:"container"`
}

// Del is one CNI DEL a runtime ran for an old sandbox, as measured.
type Del struct {
	Time      string `json:"time"`
	Pod       string `json:"pod"`
	SandboxID string `json:"sandboxID"`
	NetnsPath string `json:"netnsPath"`
	// Issuer says who asked for it: the runtime on its own, or kubelet
	// through a CRI request.
	Issuer string `json:"issuer"`
	Error  string `json:"error,omitempty"`
}

// Check is one expectation of a scenario, judged: what was expected
// (scenarios.Check), of what (Subject, when the check runs once per
// sandbox or pod), whether it held and what was seen.
type Check struct {
	ID      string              `json:"id"`
	Kind    scenarios.CheckKind `json:"kind"`
	Name    string              `json:"name"`
	Subject string              `json:"subject,omitempty"`
	OK      bool                `json:"ok"`
	Detail  string              `json:"detail,omitempty"`
}

// NewCheck judges c: ok and what was seen.
func NewCheck(c scenarios.Check, subject string, ok bool, detail string) Check {
	name := c.What
	if subject != "" {
		name += " (" + subject + ")"
	}
	return Check{ID: c.ID, Kind: c.Kind, Name: name, Subject: subject, OK: ok, Detail: detail}
}

// Record adds a judged check to the result.
func (r *Result) Record(c scenarios.Check, subject string, ok bool, detail string) {
	r.Checks = append(r.Checks, NewCheck(c, subject, ok, detail))
}

// Judge sets Pass: a verdict, host lo (and any foreign join) as expected
// and every check held.
// Each expected check must have been recorded: one that was not (the
// scenario ended before it) counts as failed, so a check can never pass
// by being skipped. Call it once, when the scenario is over.
func (r *Result) Judge(expected []scenarios.Check) {
	if r.Error == "" {
		seen := map[string]bool{}
		for _, c := range r.Checks {
			seen[c.ID] = true
		}
		for _, c := range expected {
			if !seen[c.ID] {
				r.Record(c, "", false, "not reached: the scenario ended before this check")
			}
		}
	}
	r.Pass = r.Error == "" && r.LoUp == r.ExpectedLoUp && r.ForeignJoin == r.ExpectedForeignJoin && len(r.FailedChecks()) == 0
}

// FailedChecks names the checks that did not hold.
func (r Result) FailedChecks() []Check {
	var out []Check
	for _, c := range r.Checks {
		if !c.OK {
			out = append(out, c)
		}
	}
	return out
}

// TimelineBroken returns the failed checks that say the scenario's
// timeline did not happen as scripted: such a run judges nothing about
// the component (a bisect step must skip it).
func (r Result) TimelineBroken() []Check {
	var out []Check
	for _, c := range r.FailedChecks() {
		if c.Kind == scenarios.Timeline {
			out = append(out, c)
		}
	}
	return out
}

// Verdict is the result in one word: pass, FAIL (a mismatch) or NO-VERDICT.
func (r Result) Verdict() string {
	switch {
	case r.Error != "":
		return "NO-VERDICT"
	case r.Pass:
		return "pass"
	default:
		return "FAIL"
	}
}

// LoState prints lo as the write-up does.
func (r Result) LoState() string {
	if r.Error != "" {
		return "?"
	}
	return UpDown(r.LoUp)
}

// UpDown prints a link state as the write-up does.
func UpDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}
