package runner

import (
	"testing"
	"time"
)

func TestPhasesOfACRIOReboot(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	timeline := []Event{
		{At: at(0), Step: StepDomainStarted},
		{At: at(40), Step: StepBooted},
		{At: at(41), Step: "waiting for the static pods"},
		{At: at(50), Step: StepReady},
		{At: at(75), Step: StepPodsRunning},
		{At: at(77), Step: "CRI-O configuration"},
		{At: at(79), Step: StepReboot},
		{At: at(130), Step: StepNewBoot},
		{At: at(129), Step: StepDelJournal}, // stamped by the node before SSH answered
		{At: at(131), Step: "PID reuse"},
		{At: at(150), Step: "static pods Running again"},
		{At: at(152), Step: StepPodsRunning}, // not the first: ignored
		{At: at(170), Step: StepTeardown},
	}
	got := PhasesOf(timeline, at(172))
	want := Phases{BootS: 40, ReadyS: 10, PodsS: 25, PrepareS: 4, RebootS: 51, DelS: 0, ChecksS: 40, TeardownS: 2, WallS: 172}
	if *got != want {
		t.Fatalf("got %+v\nwant %+v", *got, want)
	}
	sum := got.BootS + got.ReadyS + got.PodsS + got.PrepareS + got.RebootS + got.DelS + got.ChecksS + got.TeardownS
	if sum != got.WallS {
		t.Fatalf("phases add up to %v, wall %v: a stretch is unnamed", sum, got.WallS)
	}
}

func TestPhasesOfASecondScenarioOnTheNode(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 6, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	// No boot, no readiness, a legacy DEL; the node lives on.
	timeline := []Event{
		{At: at(0), Step: "waiting for the static pods"},
		{At: at(1), Step: StepPodsRunning},
		{At: at(3), Step: "CNI ADD"},
		{At: at(4), Step: StepReboot},
		{At: at(60), Step: StepNewBoot},
		{At: at(65), Step: "CNI DEL (first try)"},
		{At: at(70), Step: "CNI DEL"},
	}
	got := PhasesOf(timeline, at(90))
	want := Phases{PodsS: 1, PrepareS: 3, RebootS: 56, DelS: 5, ChecksS: 25, WallS: 90}
	if *got != want {
		t.Fatalf("got %+v\nwant %+v", *got, want)
	}
	r := Result{Timeline: timeline, Phases: got}
	r.Teardown("n", at(90), at(93))
	if r.Phases.TeardownS != 3 || r.Phases.ChecksS != 25 || r.Phases.WallS != 93 {
		t.Fatalf("after teardown: %+v", *r.Phases)
	}
	if PhasesOf(nil, at(1)) != nil {
		t.Fatal("phases of an empty timeline")
	}
}
