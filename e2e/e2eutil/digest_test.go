package e2eutil

import (
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func TestFailureDigest(t *testing.T) {
	long := strings.Repeat("x", 300)
	r := types.Report{SpecReports: types.SpecReports{
		{LeafNodeText: "passes", State: types.SpecStatePassed},
		{
			ContainerHierarchyTexts: []string{"Kubernetes nodes", "on cri-dockerd"}, LeafNodeText: "stop-race",
			State: types.SpecStateFailed,
			Failure: types.Failure{
				Message:         "start node n1\nUnexpected error:\n\n    boot n1: no SSH within 6m0s\n1\n2\n3\n4\n5\n6\n7\n" + long,
				Location:        types.CodeLocation{FileName: "/c/e2e/vm/crio_test.go", LineNumber: 119},
				FailureNodeType: types.NodeTypeBeforeAll,
			},
		},
		{LeafNodeText: "second", State: types.SpecStateTimedout, Failure: types.Failure{Message: "timed out", FailureNodeType: types.NodeTypeIt}},
		{LeafNodeText: "third", State: types.SpecStatePanicked, Failure: types.Failure{Message: "must not show", FailureNodeType: types.NodeTypeIt}},
	}}
	got := FailureDigest(r, "/r")
	for _, want := range []string{
		"e2e: 3 failed",
		"/r/artifacts",
		"- failed [BeforeAll] Kubernetes nodes on cri-dockerd stop-race (/c/e2e/vm/crio_test.go:119)",
		"    boot n1: no SSH within 6m0s\n",
		"    … (3 more lines)\n",
		"- timedout [It] second",
		"    timed out\n",
		"- panicked [It] third",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("digest lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "must not show") || strings.Contains(got, "passes") {
		t.Errorf("digest shows a third failure's message or a passed spec:\n%s", got)
	}
	if strings.Contains(got, "\n    \n") {
		t.Errorf("digest keeps blank lines:\n%s", got)
	}
	if FailureDigest(types.Report{SpecReports: r.SpecReports[:1]}, "/r") != "" {
		t.Error("a report without failures has a digest")
	}
}

// A retried start is listed, also when nothing failed.
func TestFailureDigestListsRetriedStarts(t *testing.T) {
	entry := types.ReportEntry{Name: startRetried, Value: types.WrapEntryValue("n1: boot n1: no SSH within 6m0s\nlast lines\na\nb\nc")}
	r := types.Report{SpecReports: types.SpecReports{
		{LeafNodeText: "passes", State: types.SpecStatePassed, ReportEntries: types.ReportEntries{entry}},
	}}
	got := FailureDigest(r, "/r")
	want := "e2e: 1 node starts failed once and were retried (consoles under /r/artifacts):\n" +
		"- n1: boot n1: no SSH within 6m0s\n    last lines\n    a\n    … (2 more lines)\n"
	if got != want {
		t.Errorf("digest:\n%s\nwant:\n%s", got, want)
	}
}

// Gomega's dump of an error value is left out, its text kept.
func TestMessageLinesDropsGomegaDump(t *testing.T) {
	msg := "start node y\nUnexpected error:\n    <*fmt.wrapError | 0x237c6743e640>: \n    boot y: no SSH\n    {\n        msg: \"boot y: no SSH\",\n        err: <*errors.errorString | 0x1>{\n            s: \"x\",\n        },\n    }\noccurred"
	got := strings.Join(messageLines(msg, 8), "|")
	if want := "start node y|Unexpected error:|boot y: no SSH|occurred"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A dump at the left margin is a dump too.
func TestMessageLinesDropsUnindentedDump(t *testing.T) {
	got := strings.Join(messageLines("boot y: no SSH\n{\n    msg: \"x\",\n}\noccurred", 8), "|")
	if want := "boot y: no SSH|occurred"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestMessageLinesCutsWideLines(t *testing.T) {
	lines := messageLines(strings.Repeat("ÿ", 500), 3)
	if len(lines) != 1 || len([]rune(lines[0])) != digestWidth+1 {
		t.Errorf("got %d lines, first %d runes", len(lines), len([]rune(lines[0])))
	}
}
