package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeImage(t *testing.T, dir string) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "bin")
	os.WriteFile(src, []byte("#!/bin/true\n"), 0o755)
	err := Write(dir, Image{Ref: "v1", Entrypoint: []string{"/podserver"}, Files: []File{
		{Path: "/podserver", Src: src, Mode: 0o755},
		{Path: "/usr/bin/pause", Src: src, Mode: 0o755},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// The layout must be byte-for-byte the same on every build: the node image
// hashes it.
func TestDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	writeImage(t, a)
	writeImage(t, b)
	ia, _ := os.ReadFile(filepath.Join(a, "index.json"))
	ib, _ := os.ReadFile(filepath.Join(b, "index.json"))
	if !bytes.Equal(ia, ib) {
		t.Fatalf("index.json differs:\n%s\n%s", ia, ib)
	}
}

// Every blob is named by its digest, the index names the ref, and the
// layer holds the files with their parent dirs.
func TestLayout(t *testing.T) {
	dir := t.TempDir()
	writeImage(t, dir)
	blobs, err := filepath.Glob(filepath.Join(dir, "blobs", "sha256", "*"))
	if err != nil || len(blobs) != 3 {
		t.Fatalf("want 3 blobs (layer, config, manifest), got %v %v", blobs, err)
	}
	var layer []byte
	for _, b := range blobs {
		data, _ := os.ReadFile(b)
		sum := sha256.Sum256(data)
		if hex.EncodeToString(sum[:]) != filepath.Base(b) {
			t.Errorf("blob %s does not match its digest", filepath.Base(b))
		}
		if !json.Valid(data) { // config and manifest are JSON; the layer is a tar
			layer = data
		}
	}
	var index struct {
		Manifests []struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"manifests"`
	}
	data, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	if err := json.Unmarshal(data, &index); err != nil || index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "v1" {
		t.Fatalf("index %s: %v", data, err)
	}
	tr := tar.NewReader(bytes.NewReader(layer))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if got := strings.Join(names, " "); got != "usr/ usr/bin/ podserver usr/bin/pause" {
		t.Fatalf("layer entries %q", got)
	}
}
