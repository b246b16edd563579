package kube

import (
	"os"
	"strings"
	"testing"
)

// systemctl show --property=Id,ActiveState,NRestarts,ExecMainStartTimestampMonotonic,ExecMainExitTimestampMonotonic crio kubelet pidreuse-squat.service
// as systemd 252 prints it in the node (a crio that cannot start; squat done).
const showOut = `Id=crio.service
ActiveState=activating
NRestarts=4
ExecMainStartTimestampMonotonic=41233120
ExecMainExitTimestampMonotonic=41301555

Id=kubelet.service
ActiveState=active
NRestarts=0
ExecMainStartTimestampMonotonic=40011201
ExecMainExitTimestampMonotonic=0

Id=pidreuse-squat.service
ActiveState=active
NRestarts=0
ExecMainStartTimestampMonotonic=12000111
ExecMainExitTimestampMonotonic=13500222
`

func TestParseUnits(t *testing.T) {
	units, err := ParseUnits(showOut)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 3 {
		t.Fatalf("%d units", len(units))
	}
	if u := units[0]; u.Name != "crio" || u.State != "activating" || u.Restarts != 4 || u.ExecMainStartMono != 41233120 {
		t.Errorf("crio: %+v", u)
	}
	if u := units[2]; u.Name != "pidreuse-squat" || u.ExecMainExitMono != 13500222 {
		t.Errorf("squat: %+v", u)
	}
	if _, err := ParseUnits("Id=x\nnonsense"); err == nil {
		t.Error("a line without = must be an error")
	}
	if _, err := ParseUnits("ActiveState=active"); err == nil {
		t.Error("a block without Id must be an error")
	}
}

func TestFailing(t *testing.T) {
	u := func(name, state string, restarts int) Unit { return Unit{Name: name, State: state, Restarts: restarts} }
	cases := []struct {
		name    string
		units   []Unit
		failing bool
		blame   string
	}{
		{"both healthy", []Unit{u("crio", "active", 0), u("kubelet", "active", 0)}, false, ""},
		{"a restart or two is not failing", []Unit{u("crio", "active", 2), u("kubelet", "activating", 1)}, false, ""},
		{"crio down: kubelet fails for want of it", []Unit{u("crio", "activating", 5), u("kubelet", "active", 3)}, true, "crio"},
		{"crio fine, kubelet restarting", []Unit{u("crio", "active", 0), u("kubelet", "activating", 3)}, true, "kubelet"},
		{"crio failed for good", []Unit{u("crio", "failed", 0), u("kubelet", "active", 0)}, true, "crio"},
	}
	for _, c := range cases {
		blame, failing := Failing(c.units)
		if failing != c.failing || blame.Name != c.blame {
			t.Errorf("%s: failing %v blame %q, want %v %q", c.name, failing, blame.Name, c.failing, c.blame)
		}
	}
	units, _ := ParseUnits(showOut)
	msg := FailingMessage(units[:2], units[0], "line 1\nline 2\n")
	for _, want := range []string{"crio.service activating after 4 restarts", "kubelet.service active after 0 restarts", "is the crio under test a working build", "line 2"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
}

// The same, as systemd 252 printed it in a node (properties in its own
// order, not the one asked for).
func TestParseUnitsFromANode(t *testing.T) {
	data, err := os.ReadFile("testdata/systemctl-show.txt")
	if err != nil {
		t.Fatal(err)
	}
	units, err := ParseUnits(string(data))
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 3 || units[2].Name != "pidreuse-squat" || units[2].ExecMainExitMono == 0 || units[0].ExecMainStartMono == 0 {
		t.Fatalf("%+v", units)
	}
	if units[2].ExecMainExitMono > units[0].ExecMainStartMono {
		t.Errorf("in that run the squat ended before crio started: %+v", units)
	}
}
