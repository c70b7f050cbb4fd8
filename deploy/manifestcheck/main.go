// Command manifestcheck checks Kubernetes manifests rendered from the pgcloak
// Helm chart (helm template ... | go run ./deploy/manifestcheck -) against
// what a "restricted" Pod Security namespace and docs/deploy.md require: no
// container can run as root or gain privileges, every image is pinned, the
// unauthenticated admin port is not on the clients' Service, Secrets are
// not mounted inside a ConfigMap's mount, and the Deployment has probes,
// resources, a config checksum, a PodDisruptionBudget and a NetworkPolicy.
//
// Usage: manifestcheck FILE... ("-" reads stdin). Exit status 1 lists every
// violation.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

func main() {
	if len(os.Args) < 2 || slices.Contains([]string{"-h", "-help", "--help"}, os.Args[1]) {
		fmt.Fprintln(os.Stderr, "usage: manifestcheck FILE... (- for stdin)")
		if len(os.Args) >= 2 {
			os.Exit(0)
		}
		os.Exit(2)
	}
	var docs []obj
	for _, name := range os.Args[1:] {
		var data []byte
		var err error
		if name == "-" {
			data, err = io.ReadAll(os.Stdin)
		} else {
			data, err = os.ReadFile(name)
		}
		if err == nil {
			var d []obj
			d, err = parse(data)
			docs = append(docs, d...)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "manifestcheck: %s: %v\n", name, err)
			os.Exit(2)
		}
	}
	problems := check(docs)
	for _, p := range problems {
		fmt.Println(p)
	}
	if len(problems) > 0 {
		fmt.Printf("manifestcheck: %d problem(s) in %d objects\n", len(problems), len(docs))
		os.Exit(1)
	}
	fmt.Printf("manifestcheck: %d objects ok\n", len(docs))
}

type obj = map[string]any

// parse splits a multi-document YAML stream into objects.
func parse(data []byte) ([]obj, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var out []obj
	for {
		var o obj
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if o != nil {
			out = append(out, o)
		}
	}
}

// get walks a path of map keys.
func get(o any, path ...string) any {
	for _, k := range path {
		m, ok := o.(obj)
		if !ok {
			return nil
		}
		o = m[k]
	}
	return o
}

func list(o any, path ...string) []any {
	l, _ := get(o, path...).([]any)
	return l
}

func str(o any, path ...string) string {
	s, _ := get(o, path...).(string)
	return s
}

// boolean reads a bool; ok is false when it is not set.
func boolean(o any, path ...string) (v, ok bool) {
	v, ok = get(o, path...).(bool)
	return v, ok
}

func name(o obj) string { return str(o, "kind") + "/" + str(o, "metadata", "name") }

// podSpec returns the pod template of a workload, nil for other kinds.
func podSpec(o obj) any {
	switch str(o, "kind") {
	case "Pod":
		return get(o, "spec")
	case "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job":
		return get(o, "spec", "template", "spec")
	case "CronJob":
		return get(o, "spec", "jobTemplate", "spec", "template", "spec")
	}
	return nil
}

const adminPortNumber = 9187

func isAdminPort(p any) bool {
	if str(p, "name") == "admin" || str(p, "targetPort") == "admin" {
		return true
	}
	for _, k := range []string{"port", "targetPort"} {
		if n, ok := get(p, k).(int); ok && n == adminPortNumber {
			return true
		}
	}
	return false
}

func check(docs []obj) []string {
	var problems []string
	bad := func(o obj, format string, args ...any) {
		problems = append(problems, name(o)+": "+fmt.Sprintf(format, args...))
	}
	kinds := map[string]int{}
	clientService, adminService := false, false
	for _, o := range docs {
		kinds[str(o, "kind")]++
		if spec := podSpec(o); spec != nil {
			checkPod(o, spec, bad)
		}
		if str(o, "kind") == "Service" {
			var admin, other []string
			for _, p := range list(o, "spec", "ports") {
				if isAdminPort(p) {
					admin = append(admin, fmt.Sprint(get(p, "port")))
				} else {
					other = append(other, fmt.Sprint(get(p, "port")))
				}
			}
			switch {
			case len(admin) > 0 && len(other) > 0:
				bad(o, "the admin port (%s, unauthenticated) is on a Service with client ports (%s): give it a Service of its own",
					strings.Join(admin, ","), strings.Join(other, ","))
			case len(admin) > 0:
				adminService = true
				if t := str(o, "spec", "type"); t == "LoadBalancer" || t == "NodePort" {
					bad(o, "the admin Service is exposed outside the cluster (type %s)", t)
				}
			case len(other) > 0:
				clientService = true
			}
		}
		if str(o, "kind") == "Deployment" {
			if str(o, "spec", "template", "metadata", "annotations", "checksum/config") == "" {
				bad(o, "no checksum/config annotation: a config change would not roll the pods")
			}
			for _, c := range list(podSpec(o), "containers") {
				for _, probe := range []string{"readinessProbe", "livenessProbe"} {
					if get(c, probe) == nil {
						bad(o, "container %s has no %s", str(c, "name"), probe)
					}
				}
				if get(c, "resources", "requests") == nil || get(c, "resources", "limits", "memory") == nil {
					bad(o, "container %s has no resource requests or memory limit", str(c, "name"))
				}
			}
		}
	}
	for _, k := range []string{"Deployment", "ConfigMap", "PodDisruptionBudget", "NetworkPolicy"} {
		if kinds[k] == 0 {
			problems = append(problems, "no "+k)
		}
	}
	if !clientService {
		problems = append(problems, "no Service for clients")
	}
	if !adminService {
		problems = append(problems, "no admin Service")
	}
	return problems
}

// checkPod applies the "restricted" Pod Security Standard, image pinning
// and the mount layout to one pod spec.
func checkPod(o obj, spec any, bad func(obj, string, ...any)) {
	for _, k := range []string{"hostNetwork", "hostPID", "hostIPC"} {
		if v, _ := boolean(spec, k); v {
			bad(o, "%s is on", k)
		}
	}
	podSC := get(spec, "securityContext")
	podNonRoot, _ := boolean(podSC, "runAsNonRoot")
	podUser, podUserSet := get(podSC, "runAsUser").(int)
	podSeccomp := str(podSC, "seccompProfile", "type")
	containers := append(slices.Clone(list(spec, "initContainers")), list(spec, "containers")...)
	if len(containers) == 0 {
		bad(o, "no containers")
	}
	configMounts := map[string]bool{}
	for _, v := range list(spec, "volumes") {
		if get(v, "configMap") != nil {
			configMounts[str(v, "name")] = true
		}
	}
	for _, c := range containers {
		cn := "container " + str(c, "name")
		sc := get(c, "securityContext")
		nonRoot, set := boolean(sc, "runAsNonRoot")
		if !set {
			nonRoot = podNonRoot
		}
		if !nonRoot {
			bad(o, "%s may run as root: runAsNonRoot is not true", cn)
		}
		user, userSet := get(sc, "runAsUser").(int)
		if !userSet {
			user, userSet = podUser, podUserSet
		}
		if userSet && user == 0 {
			bad(o, "%s runs as user 0", cn)
		}
		if v, set := boolean(sc, "allowPrivilegeEscalation"); !set || v {
			bad(o, "%s: allowPrivilegeEscalation is not false", cn)
		}
		if v, _ := boolean(sc, "privileged"); v {
			bad(o, "%s is privileged", cn)
		}
		if v, _ := boolean(sc, "readOnlyRootFilesystem"); !v {
			bad(o, "%s: readOnlyRootFilesystem is not true", cn)
		}
		drop := list(sc, "capabilities", "drop")
		if !slices.Contains(drop, any("ALL")) {
			bad(o, "%s does not drop ALL capabilities", cn)
		}
		if add := list(sc, "capabilities", "add"); len(add) > 0 {
			bad(o, "%s adds capabilities %v", cn, add)
		}
		seccomp := str(sc, "seccompProfile", "type")
		if seccomp == "" {
			seccomp = podSeccomp
		}
		if seccomp != "RuntimeDefault" && seccomp != "Localhost" {
			bad(o, "%s: seccompProfile is not RuntimeDefault", cn)
		}
		if img := str(c, "image"); !pinned(img) {
			bad(o, "%s: image %q is not pinned (a version tag or a digest, not latest)", cn, img)
		}
		// A Secret mounted inside a ConfigMap's directory hides files and
		// breaks the ConfigMap's atomic updates.
		var cmPaths []string
		for _, m := range list(c, "volumeMounts") {
			if configMounts[str(m, "name")] {
				cmPaths = append(cmPaths, strings.TrimSuffix(str(m, "mountPath"), "/")+"/")
			}
		}
		for _, m := range list(c, "volumeMounts") {
			if configMounts[str(m, "name")] {
				continue
			}
			for _, p := range cmPaths {
				if strings.HasPrefix(str(m, "mountPath")+"/", p) {
					bad(o, "%s mounts %s at %s, inside a ConfigMap's mount %s", cn, str(m, "name"), str(m, "mountPath"), p)
				}
			}
		}
	}
}

// pinned: a digest, or a tag that is not latest.
func pinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	last := image[strings.LastIndex(image, "/")+1:]
	i := strings.LastIndex(last, ":")
	return i >= 0 && last[i+1:] != "" && last[i+1:] != "latest"
}
