// Package ociimage writes a minimal OCI image layout — one uncompressed
// layer of static files — so the node's pods need no registry. The output
// is deterministic (fixed times, sorted entries), so it hashes the same on
// every build and does not bust the node image cache.
package ociimage

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"
)

// File is one file of the image's single layer.
type File struct {
	Path string // absolute path in the image
	Src  string // host file to copy
	Mode int64
}

// Image describes what to write.
type Image struct {
	// Ref is the tag recorded in index.json (org.opencontainers.image.ref.name),
	// what `skopeo copy oci:DIR:REF` names.
	Ref        string
	Files      []File
	Entrypoint []string
	Cmd        []string
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Write lays img out as an OCI image layout in dir (created).
func Write(dir string, img Image) error {
	if img.Ref == "" || len(img.Files) == 0 {
		return fmt.Errorf("oci image %s: needs a ref and at least one file", dir)
	}
	layer, err := layerTar(img.Files)
	if err != nil {
		return fmt.Errorf("oci image %s: %w", img.Ref, err)
	}
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		return err
	}
	put := func(data []byte) (string, error) {
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		return "sha256:" + h, os.WriteFile(filepath.Join(blobs, h), data, 0o644)
	}
	layerDigest, err := put(layer)
	if err != nil {
		return err
	}
	config, err := json.Marshal(map[string]any{
		"architecture": "amd64",
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": img.Entrypoint, "Cmd": img.Cmd},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	})
	if err != nil {
		return err
	}
	configDigest, err := put(config)
	if err != nil {
		return err
	}
	manifest, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        descriptor{MediaType: mediaConfig, Digest: configDigest, Size: int64(len(config))},
		"layers":        []descriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: int64(len(layer))}},
	})
	if err != nil {
		return err
	}
	manifestDigest, err := put(manifest)
	if err != nil {
		return err
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"manifests": []descriptor{{MediaType: mediaManifest, Digest: manifestDigest, Size: int64(len(manifest)),
			Annotations: map[string]string{"org.opencontainers.image.ref.name": img.Ref}}},
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644)
}

// layerTar packs files with their parent directories, sorted, with a
// fixed modification time.
func layerTar(files []File) ([]byte, error) {
	epoch := time.Unix(0, 0).UTC()
	dirs := map[string]bool{}
	for _, f := range files {
		for d := path.Dir(f.Path); d != "/" && d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for d := range dirs {
		names = append(names, d)
	}
	sort.Strings(names)
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Path < sorted[j].Path })

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range names {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d[1:] + "/", Mode: 0o755, ModTime: epoch, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, f := range sorted {
		data, err := os.ReadFile(f.Src)
		if err != nil {
			return nil, err
		}
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: f.Path[1:], Mode: f.Mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
