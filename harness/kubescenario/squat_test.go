package kubescenario

import (
	"strings"
	"testing"

	"github.com/pidreuse/pidreuse/harness/kube"
)

func TestJudgeSquat(t *testing.T) {
	squat := kube.Unit{Name: "pidreuse-squat", ExecMainExitMono: 13_500_000}
	crio := kube.Unit{Name: "crio", ExecMainStartMono: 14_000_000}
	taken := `{"taken":[{"pid":590,"attempts":1,"isHostNetns":true},{"pid":528,"isHostNetns":true,"heldBy":"process \"systemd-udevd\""}]}`
	cases := []struct {
		name    string
		result  string
		pids    []int
		squat   kube.Unit
		wantErr string
		want    string
	}{
		{"all taken before crio", taken, []int{528, 590}, squat, "", `528 (process "systemd-udevd"), 590 (nodeagent hold)`},
		{"a miss", `{"taken":[],"missed":[{"pid":590,"error":"in use by a thread"}]}`, []int{590}, squat, "could not take every container PID", ""},
		{"a PID nobody took", taken, []int{528, 590, 600}, squat, "PID 600 was not taken", ""},
		{"held in another netns", `{"taken":[{"pid":590,"isHostNetns":false}]}`, []int{590}, squat, "PID 590 was not taken", ""},
		{"squat after crio", taken, []int{590}, kube.Unit{Name: "pidreuse-squat", ExecMainExitMono: 15_000_000}, "must be taken before crio starts", ""},
		{"squat never ran", taken, []int{590}, kube.Unit{Name: "pidreuse-squat"}, "must be taken before crio starts", ""},
		{"garbage", `not json`, []int{590}, squat, "squat result", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := JudgeSquat([]byte(c.result), c.pids, c.squat, crio)
			if c.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.wantErr) {
					t.Fatalf("error %v, want %q", err, c.wantErr)
				}
				return
			}
			if err != nil || s.String() != c.want {
				t.Fatalf("got %q, %v; want %q", s, err, c.want)
			}
		})
	}
}
