package runner

import (
	"strings"
	"time"
)

// Steps of a VM scenario's timeline that bound its phases. The scenarios
// name their steps with these, so Phases can find them.
const (
	StepDomainStarted = "domain started"
	StepBooted        = "booted to SSH"
	StepReady         = "runtime ready"
	StepPodsRunning   = "static pods Running"
	StepReboot        = "reboot"
	StepNewBoot       = "new boot"
	// StepDel starts the name of every step that is a CNI DEL of an old
	// sandbox: the legacy runtime's ("CNI DEL", "CNI DEL (first try)")
	// and the one a runtime's journal shows ("CNI DEL in the journal").
	StepDel = "CNI DEL"
	// StepDelJournal is a DEL as the runtime's journal stamps it, placed
	// on the harness's clock.
	StepDelJournal = "CNI DEL in the journal"
	// StepTeardown is where the node's teardown began, after the last
	// scenario on it.
	StepTeardown = "teardown"
)

// Phases say where a VM scenario's time went, in seconds: one after the
// other, each from the step that ends the one before, so they add up to
// WallS and no stretch is left unnamed. A phase whose step the scenario
// never reached (a second scenario on a node already booted has no boot;
// a runtime that drops an old sandbox without a DEL has no DEL) is 0 and
// its time goes to the next phase.
type Phases struct {
	// BootS is from the domain's start to SSH.
	BootS float64 `json:"boot_s"`
	// ReadyS is from SSH to the runtime and kubelet running (as their
	// units say).
	ReadyS float64 `json:"ready_s"`
	// PodsS is until the harness saw the static pods Running.
	PodsS float64 `json:"pods_s"`
	// PrepareS is until the reboot was asked for: what the harness
	// records before it (the runtime's configuration, the sandboxes, the
	// squat list).
	PrepareS float64 `json:"prepare_s"`
	// RebootS is from the guest's reboot to SSH on the new boot.
	RebootS float64 `json:"reboot_s"`
	// DelS is from the new boot to the first DEL of an old sandbox.
	DelS float64 `json:"del_s"`
	// ChecksS is from the DEL to the end of the scenario: the pods again,
	// the journal, lo, the liveness watch.
	ChecksS float64 `json:"checks_s"`
	// TeardownS is the node's teardown after the last scenario on it.
	TeardownS float64 `json:"teardown_s"`
	// WallS is the whole: from the domain's start (or, on a node an
	// earlier scenario booted, this scenario's start) to its end or the
	// node's teardown.
	WallS float64 `json:"wall_s"`
}

// PhasesOf reads a scenario's phases from its timeline, which must be in
// time order; end is when the scenario (or the node's teardown) ended.
// Each boundary is the first step of its kind after the one before, so a
// scenario's second "static pods Running" (after the reboot) is not taken
// for the first.
func PhasesOf(timeline []Event, end time.Time) *Phases {
	if len(timeline) == 0 {
		return nil
	}
	start := timeline[0].At
	if end.Before(start) {
		end = start
	}
	type boundary struct {
		match func(string) bool
		phase *float64
	}
	var ph Phases
	is := func(name string) func(string) bool { return func(s string) bool { return s == name } }
	// Each phase ends at its boundary step; the checks end at the
	// teardown step, or at end when the node lives on.
	bounds := []boundary{
		{is(StepBooted), &ph.BootS},
		{is(StepReady), &ph.ReadyS},
		{is(StepPodsRunning), &ph.PodsS},
		{is(StepReboot), &ph.PrepareS},
		{is(StepNewBoot), &ph.RebootS},
		{func(s string) bool { return strings.HasPrefix(s, StepDel) }, &ph.DelS},
		{is(StepTeardown), &ph.ChecksS},
	}
	last, i := start, 0
	for _, b := range bounds {
		for j := i; j < len(timeline); j++ {
			if b.match(timeline[j].Step) {
				at := timeline[j].At
				if at.Before(last) {
					at = last
				}
				*b.phase = seconds(at.Sub(last))
				last, i = at, j+1
				break
			}
		}
	}
	if findStep(timeline, StepTeardown) >= 0 {
		ph.TeardownS = seconds(end.Sub(last))
	} else {
		ph.ChecksS = seconds(end.Sub(last))
	}
	ph.WallS = seconds(end.Sub(start))
	return &ph
}

func findStep(timeline []Event, step string) int {
	for i, e := range timeline {
		if e.Step == step {
			return i
		}
	}
	return -1
}

// seconds rounds to milliseconds: the JSON stays readable.
func seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond).Milliseconds()) / 1000
}

// Teardown adds the node's teardown, from start to end, to r, the last
// scenario played on the node, and counts it in r's phases.
func (r *Result) Teardown(node string, start, end time.Time) {
	if r.Phases == nil {
		return
	}
	r.Timeline = append(r.Timeline, Event{At: start.UTC(), Step: StepTeardown, Detail: node})
	r.Phases = PhasesOf(r.Timeline, end)
}
