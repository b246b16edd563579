// Package nodebin names the node-side binaries: the commands under cmd/
// that run inside a node, built static (`make build`) into one dir and
// laid into node images from there. One list, so the Makefile's build,
// the suites' build and every check of that dir agree.
package nodebin

import (
	"fmt"
	"os"
	"path/filepath"
)

// The node-side binaries.
const (
	Agent     = "nodeagent" // every scenario step inside a node
	Failonce  = "failonce"  // a CNI plugin that fails the first DEL (del-retry)
	NodeCRI   = "nodecri"   // reads CRI-O over CRI (the CRI-O images)
	PodServer = "podserver" // the pods' process (the CRI-O images' pod image)
	CNIRecord = "cnirecord" // the recording CNI plugin of pidreuse odds
)

// All lists them, the agent first.
func All() []string { return []string{Agent, Failonce, NodeCRI, PodServer, CNIRecord} }

// what says what a binary is, for an error that names a missing one.
var what = map[string]string{
	Agent: "the node agent", Failonce: "the failonce CNI plugin", NodeCRI: "the CRI client",
	PodServer: "the pod server", CNIRecord: "the recording CNI plugin",
}

// Check says whether each of names (every node-side binary when none is
// named) is an executable file in dir, naming the first that is not and
// how to get it. Each use checks what it needs: the sandbox tier runs only
// the agent and failonce, a CRI-O image takes nodecri and podserver too.
func Check(dir string, names ...string) error {
	if len(names) == 0 {
		names = All()
	}
	for _, name := range names {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
			return fmt.Errorf("%s (%s) is missing or not executable in %s: run `make build`", name, what[name], dir)
		}
	}
	return nil
}
