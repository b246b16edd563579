package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/containernetworking/cni/libcni"

	"github.com/pidreuse/pidreuse/node/agentapi"
	"github.com/pidreuse/pidreuse/node/cniplugin"
)

// CNIVersion is spoken by every plugin version in the matrix (v0.8.x to
// current), so one network list works with all of them.
const CNIVersion = cniplugin.NetworkListVersion

// NetworkName is the name of the network list the legacy-runtime emulator
// runs; libcni keys its result cache by it.
const NetworkName = "pidreuse"

// CNIRequest is one ADD or DEL as the legacy runtime would issue it.
type CNIRequest struct {
	ID         string
	NetnsPath  string   // empty: use the path recorded at sandbox create
	PluginDirs []string // searched in order
	Plugins    []string // network list, in ADD order
}

// NetworkList builds the conflist for plugins. Our fault injector keeps its
// per-container state in the agent's state dir.
func (a *Agent) NetworkList(plugins []string) (*libcni.NetworkConfigList, error) {
	if len(plugins) == 0 {
		return nil, fmt.Errorf("network list: no plugins given")
	}
	var confs []map[string]any
	for _, p := range plugins {
		c := map[string]any{"type": p}
		if p == "failonce" {
			c["stateDir"] = filepath.Join(a.StateDir, "failonce")
		}
		confs = append(confs, c)
	}
	raw, err := json.Marshal(map[string]any{"cniVersion": CNIVersion, "name": NetworkName, "plugins": confs})
	if err != nil {
		return nil, fmt.Errorf("network list: %w", err)
	}
	list, err := libcni.ConfListFromBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("network list: %w", err)
	}
	return list, nil
}

// CNI runs the network list through libcni, as a runtime does. A plugin
// error is part of the result, not an error: the scenario judges the host
// lo, and a DEL that fails after setting lo down (libcni >= 1.2 plugins do
// exactly that) must still be reported.
func (a *Agent) CNI(ctx context.Context, command string, req CNIRequest) (agentapi.CNIResult, error) {
	res := agentapi.CNIResult{ID: req.ID, Command: command, PluginDirs: req.PluginDirs, NetworkName: NetworkName, Plugins: req.Plugins}
	if command != "ADD" && command != "DEL" {
		return res, fmt.Errorf("cni: unknown command %q: use add or del", command)
	}
	if len(req.PluginDirs) == 0 {
		return res, fmt.Errorf("cni %s: no plugin dir given", command)
	}
	if err := a.checkPluginDir(ctx, req.PluginDirs[0]); err != nil {
		return res, err
	}
	sb, err := a.LoadSandbox(req.ID)
	if err != nil {
		return res, err
	}
	res.NetnsPath = sb.NetnsPath
	if req.NetnsPath != "" {
		res.NetnsPath = req.NetnsPath
	}
	list, err := a.NetworkList(req.Plugins)
	if err != nil {
		return res, err
	}
	if res.NetnsTarget, err = ClassifyNetns(res.NetnsPath); err != nil {
		return res, fmt.Errorf("cni %s: %w", command, err)
	}
	if command == "ADD" && res.NetnsTarget != agentapi.TargetOther {
		return res, fmt.Errorf("cni ADD: refusing: %s names %s, not a sandbox netns", res.NetnsPath, res.NetnsTarget)
	}

	cni := libcni.NewCNIConfigWithCacheDir(req.PluginDirs, a.CNICacheDir(), nil)
	rt := &libcni.RuntimeConf{ContainerID: req.ID, NetNS: res.NetnsPath, IfName: "eth0"}
	res.StartedAt = time.Now().UTC()
	switch command {
	case "ADD":
		r, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			res.Error = err.Error()
		} else {
			res.Result = r
		}
	case "DEL":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			res.Error = err.Error()
		}
	}
	res.DurationMs = time.Since(res.StartedAt).Milliseconds()
	return res, nil
}
