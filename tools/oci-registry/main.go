// Command oci-registry serves go-containerregistry's in-memory registry (the one behind
// `crane registry serve`) with its OCI 1.1 referrers API turned on, for tests/provenance.rs.
// `crane registry serve` leaves that API off, so it stands for registries without it.
//
// Usage: oci-registry ADDRESS
//
// One correction on top: go-containerregistry's referrers listing takes each referrer's
// artifactType from config.mediaType only, while OCI 1.1 (distribution-spec, "Listing
// Referrers") says the manifest's artifactType comes first. Artifacts with the empty config
// (image-spec's guidance) would be listed as application/vnd.oci.empty.v1+json otherwise.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: oci-registry ADDRESS")
		os.Exit(2)
	}
	inner := registry.New(registry.WithReferrersSupport(true))
	listener, err := net.Listen("tcp", os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	log.Printf("serving on %s", listener.Addr())
	log.Fatal(http.Serve(listener, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		elems := strings.Split(strings.TrimSuffix(r.URL.Path, "/"), "/")
		if r.Method != http.MethodGet || len(elems) < 5 || elems[len(elems)-2] != "referrers" {
			inner.ServeHTTP(w, r)
			return
		}
		referrers(inner, w, r, strings.Join(elems[:len(elems)-2], "/"))
	})))
}

type descriptor = map[string]any

// referrers answers a referrers request from the inner registry's answer, with each
// descriptor's artifactType taken from its manifest and the artifactType filter applied.
func referrers(inner http.Handler, w http.ResponseWriter, r *http.Request, prefix string) {
	rec := httptest.NewRecorder()
	inner.ServeHTTP(rec, r)
	if rec.Code != http.StatusOK {
		copyResponse(w, rec)
		return
	}
	var index struct {
		SchemaVersion int          `json:"schemaVersion"`
		MediaType     string       `json:"mediaType"`
		Manifests     []descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &index); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	filter := r.URL.Query().Get("artifactType")
	kept := []descriptor{}
	for _, d := range index.Manifests {
		get := httptest.NewRequest(http.MethodGet, fmt.Sprintf("%s/manifests/%s", prefix, d["digest"]), nil)
		m := httptest.NewRecorder()
		inner.ServeHTTP(m, get)
		var manifest struct {
			ArtifactType string `json:"artifactType"`
		}
		if json.Unmarshal(m.Body.Bytes(), &manifest) == nil && manifest.ArtifactType != "" {
			d["artifactType"] = manifest.ArtifactType
		}
		if filter == "" || d["artifactType"] == filter {
			kept = append(kept, d)
		}
	}
	index.Manifests = kept
	body, _ := json.Marshal(index)
	w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if filter != "" {
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = bytes.NewReader(body).WriteTo(w)
}

func copyResponse(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	_, _ = rec.Body.WriteTo(w)
}
