package kubescenario

import (
	"context"
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/harness"
	"github.com/pidreuse/pidreuse/scenarios"
)

// noNode fails every command: Run must not need one to refuse a scenario
// that is not its own.
type noNode struct{ harness.Node }

func (noNode) Name() string { return "none" }

func TestRunRefusesScenariosOfTheRunner(t *testing.T) {
	scs, err := scenarios.Select("ephemeral-reused", scenarios.TierSandbox)
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), noNode{}, scs[0], Options{})
	if res.Error == "" || !strings.Contains(res.Error, "the runner plays it") || res.Pass {
		t.Fatalf("Run = error %q pass %v: want no verdict", res.Error, res.Pass)
	}
}

func TestLegacySymptomNeedsPlugins(t *testing.T) {
	scs, err := scenarios.Select("legacy-symptom", scenarios.TierVM)
	if err != nil {
		t.Fatal(err)
	}
	res := Run(context.Background(), noNode{}, scs[0], Options{})
	if !strings.Contains(res.Error, "no CNI plugin dir") || res.Verdict() != "NO-VERDICT" {
		t.Fatalf("Run = %+v", res)
	}
}
