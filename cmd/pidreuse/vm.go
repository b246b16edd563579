package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pidreuse/pidreuse/harness/libvirt"
	"github.com/pidreuse/pidreuse/harness/runner"
	"github.com/pidreuse/pidreuse/harness/vm"
	"github.com/pidreuse/pidreuse/images"
	"github.com/pidreuse/pidreuse/scenarios"
)

// nodeImage builds (or loads from the cache) the node image with the
// agent next to agentPath and every CNI plugin version of the matrix, so
// the image does not change with the version a run picks.
func nodeImage(ctx context.Context, agentPath string, progress func(string)) (*images.Image, error) {
	return images.BuildNode(ctx, filepath.Dir(agentPath), nil, progress)
}

func cmdImage(ctx context.Context, args []string) (int, error) {
	if len(args) == 0 || args[0] != "build" {
		return exitUsage, usageErr{"usage: pidreuse image build [--agent PATH]"}
	}
	c, err := parseRunFlags("image build", args[1:])
	if err != nil {
		return exitUsage, err
	}
	agentPath, err := findAgent(c.agentPath)
	if err != nil {
		return exitNoVerdict, err
	}
	img, err := nodeImage(ctx, agentPath, progressLine)
	if err != nil {
		return exitNoVerdict, err
	}
	fmt.Printf("image %s\n  dir      %s\n  base     %s (%d MiB)\n  kernel   %s\n  packages %d\n",
		img.Manifest.InputHash, img.Dir, img.BaseDisk, img.Manifest.BaseDisk.Size>>20, img.Manifest.KernelVersion, len(img.Manifest.Packages))
	return exitGood, nil
}

func progressLine(msg string) { fmt.Fprintf(os.Stderr, "pidreuse: %s\n", msg) }

func runVMTier(ctx context.Context, c runConfig, scs []scenarios.Scenario, progress func(string)) ([]runner.Result, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("the vm tier needs root (libvirt's system socket, image builds): run it as root")
	}
	agentPath, err := findAgent(c.agentPath)
	if err != nil {
		return nil, err
	}
	// Fail fast: no point building an image for a libvirtd that is not there.
	lv, err := libvirt.Connect(ctx, c.libvirtSocket)
	if err != nil {
		return nil, err
	}
	lv.Close()
	sets, err := resolvePlugins(ctx, c, progress)
	if err != nil {
		return nil, err
	}
	img, err := nodeImage(ctx, agentPath, progress)
	if err != nil {
		return nil, err
	}
	workDir, removeIfEmpty := c.runWorkDir()
	defer removeIfEmpty()
	node, err := vm.Start(ctx, vm.Options{
		Name: "pidreuse-" + c.runID + "-vm0", Dir: filepath.Join(workDir, "vm0"), Image: img, Socket: c.libvirtSocket,
		RebootMode: c.rebootMode, Keep: c.keep == "always", Progress: progress,
	})
	if err != nil {
		return nil, err
	}
	var guestSets []runner.Plugins
	for _, s := range sets {
		g := runner.Plugins{Dir: images.GuestPluginDir(s.version), Version: s.version}
		if c.cniBinDir != "" {
			// Bring-your-own plugins go in over SSH: no image rebuild.
			g.Dir = images.GuestPluginDirRoot + "/custom"
			if err := uploadDir(ctx, node, s.dir, g.Dir); err != nil {
				node.Close(context.Background())
				os.RemoveAll(workDir)
				return nil, err
			}
		}
		guestSets = append(guestSets, g)
	}
	results := runner.RunMatrix(ctx, node, scs, guestSets, runner.Options{
		Tier: c.tier, OnStep: func(sc, step string) { progress(sc + ": " + step) },
	})
	return results, finishNode(ctx, c, node, workDir, results, node.KeepRunning, progress)
}

// uploadDir copies the regular files of dir into the node.
func uploadDir(ctx context.Context, node *vm.Node, dir, guestDir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if _, err := node.Exec(ctx, "mkdir", "-p", guestDir); err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			return err
		}
		err = node.Upload(ctx, f, guestDir+"/"+e.Name(), 0o755)
		f.Close()
		if err != nil {
			return fmt.Errorf("upload %s: %w", e.Name(), err)
		}
	}
	return nil
}
