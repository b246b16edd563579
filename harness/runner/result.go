// Package runner plays a scenario on a node: the write-up's timeline as
// agent steps, with one reboot that several scenarios can share.
package runner

import "time"

// Event is one step of a scenario's timeline.
type Event struct {
	At     time.Time `json:"at"`
	Step   string    `json:"step"`
	Detail string    `json:"detail,omitempty"`
}

// Result is one scenario's outcome. Verdict fields are only meaningful
// when Error is empty; a non-empty Error means no verdict.
type Result struct {
	Scenario         string `json:"scenario"`
	Tier             string `json:"tier"`
	Node             string `json:"node"`
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
	// Checks are what a scenario verifies besides host lo (the CRI-O
	// scenarios: journal lines, liveness, restarts). Pass needs them all.
	Checks     []Check `json:"checks,omitempty"`
	Pass       bool    `json:"pass"`
	Error      string  `json:"error,omitempty"`
	DurationMs int64   `json:"durationMs"`
	Timeline   []Event `json:"timeline"`
}

// Check is one thing a scenario verified, and what it saw.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
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
	return upDown(r.LoUp)
}

func upDown(up bool) string {
	if up {
		return "UP"
	}
	return "DOWN"
}
