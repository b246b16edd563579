package cri

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// verboseInfo is what the agent takes from a verbose status's info map.
// CRI leaves that map's content to the runtime ("value should be in json
// format"), so each shape seen in a runtime's sources is decoded here, and
// nothing else is guessed.
type verboseInfo struct {
	PID       int    // 0: the runtime reported none
	NetnsPath string // "": the runtime reported none
}

// infoJSON is the one JSON document CRI-O 1.34 puts under the "info"
// key, for sandboxes and containers alike:
//
//	sandbox:   {"image": ..., "pid": N, "runtimeSpec": {...}}
//	           {"runtimeSpec": {...}}  (CRI-O with a dropped infra container)
//	container: {"sandboxID": ..., "pid": N, "runtimeSpec": {...}, "privileged": b}
type infoJSON struct {
	PID         int `json:"pid"`
	RuntimeSpec struct {
		Linux *struct {
			Namespaces []struct {
				Type string `json:"type"`
				Path string `json:"path"`
			} `json:"namespaces"`
		} `json:"linux"`
	} `json:"runtimeSpec"`
}

// parseInfo reads a verbose status's info map. Two shapes are known:
//
//   - {"info": "<JSON>"}: CRI-O 1.34 (see infoJSON).
//   - {"pid": "1234", "sandboxId": "..."}: CRI-O 1.16/1.17's
//     ContainerStatus, plain strings. Their PodSandboxStatus returns no
//     info map at all.
//
// An empty map is no error: the runtime reported nothing.
func parseInfo(info map[string]string) (verboseInfo, error) {
	var v verboseInfo
	if raw, ok := info["info"]; ok {
		var doc infoJSON
		if err := json.Unmarshal([]byte(raw), &doc); err != nil {
			return v, fmt.Errorf("verbose info: %w", err)
		}
		v.PID = doc.PID
		if doc.RuntimeSpec.Linux != nil {
			for _, ns := range doc.RuntimeSpec.Linux.Namespaces {
				if ns.Type == "network" {
					v.NetnsPath = ns.Path
				}
			}
		}
		return v, nil
	}
	if raw, ok := info["pid"]; ok {
		pid, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || pid < 0 {
			return v, fmt.Errorf("verbose info: pid %q is not a PID", raw)
		}
		v.PID = pid
	}
	return v, nil
}
