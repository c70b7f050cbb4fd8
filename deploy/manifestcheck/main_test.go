package main

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// The checked-in plain manifest (rendered from the chart) passes.
func TestRenderedManifestPasses(t *testing.T) {
	data, err := os.ReadFile("../kubernetes/pgcloak.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs, err := parse(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) < 8 {
		t.Fatalf("%d objects", len(docs))
	}
	if problems := check(docs); len(problems) > 0 {
		t.Fatalf("problems:\n%s", strings.Join(problems, "\n"))
	}
}

// Each rule fires on the manifest that breaks it.
func TestViolationsReported(t *testing.T) {
	bad := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: pgcloak}
spec:
  template:
    spec:
      securityContext: {runAsUser: 0}
      containers:
        - name: pgcloak
          image: ghcr.io/pgcloak/pgcloak:latest
          securityContext: {allowPrivilegeEscalation: true, capabilities: {add: [NET_ADMIN]}}
          volumeMounts:
            - {name: config, mountPath: /etc/pgcloak}
            - {name: tls, mountPath: /etc/pgcloak/tls}
        - name: sidecar
          image: registry.example.com:5000/tool
          securityContext: {runAsNonRoot: true, runAsUser: 1000, allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}, seccompProfile: {type: RuntimeDefault}}
      volumes:
        - {name: config, configMap: {name: pgcloak}}
        - {name: tls, secret: {secretName: pgcloak-tls}}
---
apiVersion: v1
kind: Service
metadata: {name: pgcloak}
spec:
  ports:
    - {name: postgres, port: 5432, targetPort: postgres}
    - {name: admin, port: 9187, targetPort: admin}
`
	docs, err := parse([]byte(bad))
	if err != nil {
		t.Fatal(err)
	}
	problems := check(docs)
	for _, want := range []string{
		"container pgcloak may run as root",
		"container pgcloak runs as user 0",
		"container pgcloak: allowPrivilegeEscalation is not false",
		"container pgcloak: readOnlyRootFilesystem is not true",
		"container pgcloak does not drop ALL capabilities",
		"container pgcloak adds capabilities",
		"container pgcloak: seccompProfile is not RuntimeDefault",
		`container pgcloak: image "ghcr.io/pgcloak/pgcloak:latest" is not pinned`,
		`container sidecar: image "registry.example.com:5000/tool" is not pinned`,
		"mounts tls at /etc/pgcloak/tls, inside a ConfigMap's mount",
		"no checksum/config annotation",
		"container pgcloak has no readinessProbe",
		"container pgcloak has no resource requests",
		"Service/pgcloak: the admin port (9187, unauthenticated) is on a Service with client ports (5432)",
		"no PodDisruptionBudget",
		"no NetworkPolicy",
		"no admin Service",
	} {
		if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, want) }) {
			t.Errorf("not reported: %s", want)
		}
	}
	// The sidecar's securityContext is right: only its image is wrong.
	for _, p := range problems {
		if strings.Contains(p, "container sidecar:") && !strings.Contains(p, "image") || strings.Contains(p, "container sidecar may") {
			t.Errorf("false alarm: %s", p)
		}
	}
}

func TestPinned(t *testing.T) {
	for img, want := range map[string]bool{
		"ghcr.io/pgcloak/pgcloak:0.1.0":         true,
		"pgcloak@sha256:0123abcd":               true,
		"pgcloak":                               false,
		"pgcloak:latest":                        false,
		"registry.example.com:5000/pgcloak":     false,
		"registry.example.com:5000/pgcloak:1.2": true,
	} {
		if got := pinned(img); got != want {
			t.Errorf("pinned(%q) = %v", img, got)
		}
	}
}
