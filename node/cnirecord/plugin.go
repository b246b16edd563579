package cnirecord

import (
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Conf is the plugin's entry in the network list.
type Conf struct {
	CNIVersion string `json:"cniVersion"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	// RecordFile receives one agentapi.CNIRecord per command.
	RecordFile string `json:"recordFile"`
	// WatchFile lists PIDs to report at each command (optional).
	WatchFile string `json:"watchFile,omitempty"`
	// PrevResult is what the plugins before it in the list returned on
	// ADD, handed back untouched.
	PrevResult json.RawMessage `json:"prevResult,omitempty"`
}

// Env is the CNI environment the runtime sets.
type Env struct {
	Command, ContainerID, Netns, IfName string
}

// EnvFrom reads the CNI variables through getenv.
func EnvFrom(getenv func(string) string) Env {
	return Env{Command: getenv("CNI_COMMAND"), ContainerID: getenv("CNI_CONTAINERID"), Netns: getenv("CNI_NETNS"), IfName: getenv("CNI_IFNAME")}
}

// Run executes one CNI command and returns the exit code. It does not use
// libcni's skel on purpose: skel (cni >= 1.2) checks after a DEL that
// CNI_NETNS is not the plugin's own netns and fails the command when it
// is — exactly the DEL this plugin is there to watch, and a failure would
// stop the runtime's libcni before the real plugins ran. This plugin must
// never change what they do: ADD returns the previous result as it came,
// DEL and CHECK succeed, whatever the recording met (said on stderr, which
// the runtime logs).
func Run(env Env, stdin io.Reader, stdout, stderr io.Writer, p Proc, now func() time.Time) int {
	if env.Command == "VERSION" {
		if err := version.All.Encode(stdout); err != nil {
			fmt.Fprintf(stderr, "pidreuse-record: %v\n", err)
			return 1
		}
		return 0
	}
	data, err := io.ReadAll(stdin)
	if err != nil {
		return fail(stdout, types.ErrIOFailure, "read config", err)
	}
	var conf Conf
	if err := json.Unmarshal(data, &conf); err != nil {
		return fail(stdout, types.ErrDecodingFailure, "parse config", err)
	}
	switch env.Command {
	case "ADD", "DEL", "CHECK":
	case "GC", "STATUS":
		return 0 // nothing to collect, always ready
	default:
		return fail(stdout, types.ErrInvalidEnvironmentVariables, "CNI_COMMAND", fmt.Errorf("unknown command %q", env.Command))
	}
	watch, werr := ReadWatch(conf.WatchFile)
	rec := p.Observe(now(), env.Command, env.ContainerID, env.Netns, env.IfName, watch)
	if werr != nil {
		rec.Error = join(rec.Error, werr.Error())
	}
	if conf.RecordFile == "" {
		fmt.Fprintln(stderr, "pidreuse-record: config has no recordFile: nothing recorded")
	} else if err := Append(conf.RecordFile, rec); err != nil {
		fmt.Fprintf(stderr, "pidreuse-record: %v\n", err)
	}
	if env.Command != "ADD" {
		return 0
	}
	// The result of the plugins before this one, as they made it: libcni
	// already converted it to the list's cniVersion.
	result := []byte(conf.PrevResult)
	if len(result) == 0 {
		result, _ = json.Marshal(map[string]string{"cniVersion": conf.CNIVersion})
	}
	if _, err := stdout.Write(result); err != nil {
		fmt.Fprintf(stderr, "pidreuse-record: write result: %v\n", err)
		return 1
	}
	return 0
}

// fail prints a CNI error (stdout, JSON) and returns its exit code.
func fail(stdout io.Writer, code uint, msg string, err error) int {
	_ = json.NewEncoder(stdout).Encode(types.NewError(code, "pidreuse-record: "+msg, err.Error()))
	return 1
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}
