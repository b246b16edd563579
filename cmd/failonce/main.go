// Command failonce is a CNI plugin that fails the first DEL of each
// container and lets every later one through, the way a runtime sees a DEL
// fail (a vanished netns, a busy IPAM store) and retries it later. It is a
// plugin like any other, run by libcni inside a network list, so the
// del-retry scenario exercises the real retry path rather than a shortcut.
//
// Put it before loopback in the list: libcni runs DEL in reverse order, so
// loopback's own DEL (and its own error, for plugins that have one) comes
// first and failonce's injected failure second.
package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

type netConf struct {
	types.NetConf
	// StateDir records which containers already had their one failure.
	StateDir string `json:"stateDir"`
}

func parseConf(data []byte) (*netConf, error) {
	conf := &netConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, fmt.Errorf("failonce: parse config: %w", err)
	}
	if conf.StateDir == "" {
		return nil, errors.New("failonce: config needs stateDir")
	}
	if err := version.ParsePrevResult(&conf.NetConf); err != nil {
		return nil, fmt.Errorf("failonce: parse prevResult: %w", err)
	}
	return conf, nil
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	// Pass the previous result through untouched; with none, report an
	// empty one so the next plugin has something to chain from.
	if conf.PrevResult != nil {
		return types.PrintResult(conf.PrevResult, conf.CNIVersion)
	}
	return types.PrintResult(&current.Result{CNIVersion: current.ImplementedSpecVersion}, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(conf.StateDir, 0o755); err != nil {
		return fmt.Errorf("failonce: %w", err)
	}
	marker := filepath.Join(conf.StateDir, args.ContainerID+".del-failed")
	f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, os.ErrExist) {
		return nil // already failed once: this is the retry
	}
	if err != nil {
		return fmt.Errorf("failonce: %w", err)
	}
	f.Close()
	return fmt.Errorf("failonce: injected failure of the first DEL for %s (netns %q); the runtime should retry", args.ContainerID, args.Netns)
}

func cmdCheck(args *skel.CmdArgs) error {
	_, err := parseConf(args.StdinData)
	return err
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck}, version.All, "failonce: fails the first DEL per container")
}
