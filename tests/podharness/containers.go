package podharness

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/weftmesh/weft/tests/netnsharness"
)

var everything = labels.Everything()

// volumeFileMode is the kubelet's default mode of volume files (0644).
const volumeFileMode = 0o644

// makeVolumes writes every volume of the pod under r.dir/volumes/<name>
// and returns name -> directory.
func (r *podRun) makeVolumes(ctx context.Context) (map[string]string, error) {
	out := map[string]string{}
	for _, v := range r.pod.Spec.Volumes {
		dir := filepath.Join(r.dir, "volumes", v.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // G301: read by the containers' uids.
			return nil, err
		}
		files := map[string][]byte{}
		var err error
		switch {
		case v.EmptyDir != nil:
			if err := os.Chmod(dir, 0o777); err != nil { //nolint:gosec // G302: an emptyDir is writable by every container uid.
				return nil, err
			}
		case v.ConfigMap != nil:
			err = r.configMapFiles(ctx, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.Optional, files)
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				switch {
				case src.ServiceAccountToken != nil:
					err = r.tokenFile(ctx, src.ServiceAccountToken, files)
				case src.ConfigMap != nil:
					err = r.configMapFiles(ctx, src.ConfigMap.Name, src.ConfigMap.Items, src.ConfigMap.Optional, files)
				case src.DownwardAPI != nil:
					err = r.downwardFiles(src.DownwardAPI.Items, files)
				default:
					err = unsupported("projected volume " + v.Name + ": source other than serviceAccountToken, configMap, downwardAPI")
				}
				if err != nil {
					break
				}
			}
		case v.DownwardAPI != nil:
			err = r.downwardFiles(v.DownwardAPI.Items, files)
		default:
			err = unsupported("volume " + v.Name + ": kind other than emptyDir, configMap, projected, downwardAPI")
		}
		if err != nil {
			return nil, fmt.Errorf("volume %s: %w", v.Name, err)
		}
		for name, b := range files {
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil { //nolint:gosec // G301: read by the containers' uids.
				return nil, err
			}
			if err := os.WriteFile(p, b, volumeFileMode); err != nil {
				return nil, err
			}
		}
		out[v.Name] = dir
	}
	return out, nil
}

// tokenFile asks the TokenRequest API for a token bound to the pod, as the
// kubelet does for a projected serviceAccountToken source.
func (r *podRun) tokenFile(ctx context.Context, src *corev1.ServiceAccountTokenProjection, files map[string][]byte) error {
	sa := r.pod.Spec.ServiceAccountName
	if sa == "" {
		sa = "default"
	}
	exp := int64(3600)
	if src.ExpirationSeconds != nil {
		exp = *src.ExpirationSeconds
	}
	var aud []string
	if src.Audience != "" {
		aud = []string{src.Audience}
	}
	tr, err := r.k.client.CoreV1().ServiceAccounts(r.pod.Namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
		Audiences: aud, ExpirationSeconds: &exp,
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: r.pod.Name, UID: r.pod.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("token request for %s: %w", sa, err)
	}
	files[src.Path] = []byte(tr.Status.Token)
	return nil
}

// configMapFiles waits for the ConfigMap (the kubelet retries until it
// exists) unless it is optional.
func (r *podRun) configMapFiles(ctx context.Context, name string, items []corev1.KeyToPath, optional *bool, files map[string][]byte) error {
	for {
		cm, err := r.k.client.CoreV1().ConfigMaps(r.pod.Namespace).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if len(items) == 0 {
				for k, v := range cm.Data {
					files[k] = []byte(v)
				}
				return nil
			}
			for _, it := range items {
				v, ok := cm.Data[it.Key]
				if !ok {
					return fmt.Errorf("configmap %s: no key %q", name, it.Key)
				}
				files[it.Path] = []byte(v)
			}
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("configmap %s: %w", name, err)
		}
		if optional != nil && *optional {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("configmap %s never appeared: %w", name, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (r *podRun) downwardFiles(items []corev1.DownwardAPIVolumeFile, files map[string][]byte) error {
	for _, it := range items {
		if it.FieldRef == nil {
			return unsupported("downward API item " + it.Path + " without fieldRef")
		}
		v, err := r.field(it.FieldRef.FieldPath)
		if err != nil {
			return err
		}
		files[it.Path] = []byte(v)
	}
	return nil
}

// field is a downward API field of the pod.
func (r *podRun) field(path string) (string, error) {
	p := r.pod
	switch path {
	case "metadata.name":
		return p.Name, nil
	case "metadata.namespace":
		return p.Namespace, nil
	case "metadata.uid":
		return string(p.UID), nil
	case "spec.serviceAccountName":
		return p.Spec.ServiceAccountName, nil
	case "spec.nodeName":
		return r.k.cfg.Node, nil
	case "status.podIP":
		return r.ip.String(), nil
	case "status.hostIP":
		return r.k.cfg.Net.Hub.IP.String(), nil
	}
	for prefix, m := range map[string]map[string]string{"metadata.labels": p.Labels, "metadata.annotations": p.Annotations} {
		if key, ok := strings.CutPrefix(path, prefix+"['"); ok {
			return m[strings.TrimSuffix(key, "']")], nil
		}
	}
	return "", unsupported("fieldRef " + path)
}

// env resolves a container's environment in order, as the kubelet does.
func (r *podRun) env(c corev1.Container) ([]string, map[string]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, nil, unsupported("envFrom")
	}
	vals := map[string]string{}
	var list []string
	for _, e := range c.Env {
		var v string
		switch {
		case e.ValueFrom == nil:
			v = expand(e.Value, vals)
		case e.ValueFrom.FieldRef != nil:
			var err error
			if v, err = r.field(e.ValueFrom.FieldRef.FieldPath); err != nil {
				return nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
			}
		default:
			return nil, nil, unsupported("env " + e.Name + ": valueFrom other than fieldRef")
		}
		vals[e.Name] = v
		list = append(list, e.Name+"="+v)
	}
	return list, vals, nil
}

// expand replaces $(VAR) with vars[VAR] (unknown references stay as they
// are) and $$ with $, like the kubelet's expansion of command and args.
func expand(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i:], ')')
			if end < 0 {
				b.WriteString(s[i:])
				return b.String()
			}
			name := s[i+2 : i+end]
			if v, ok := vars[name]; ok {
				b.WriteString(v)
			} else {
				b.WriteString(s[i : i+end+1])
			}
			i += end
		default:
			b.WriteByte('$')
		}
	}
	return b.String()
}

// command is the shell line that runs c in the pod's namespace: a private
// tmpfs /run with the volume mounts bound into it, the environment, the
// uid and gid, then the image's binary with the expanded args.
func (r *podRun) command(c corev1.Container, vols map[string]string) ([]string, error) {
	if len(c.Command) > 0 {
		return nil, unsupported("container " + c.Name + ": command (the image's binary is the entrypoint; use args)")
	}
	bin, ok := r.k.cfg.Images[c.Image]
	if !ok {
		return nil, fmt.Errorf("container %s: no binary for image %q (Config.Images)", c.Name, c.Image)
	}
	envList, vals, err := r.env(c)
	if err != nil {
		return nil, fmt.Errorf("container %s: %w", c.Name, err)
	}
	var script []string
	script = append(script, "set -e")
	if len(c.VolumeMounts) > 0 {
		script = append(script, "mount -t tmpfs -o mode=0755 podharness-run /run")
	}
	for _, m := range c.VolumeMounts {
		src, ok := vols[m.Name]
		if !ok {
			return nil, fmt.Errorf("container %s: mount of unknown volume %s", c.Name, m.Name)
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			return nil, unsupported("container " + c.Name + ": subPath")
		}
		// /run itself: the init step's xtables lock emptyDir (mesh.XtablesLockDir).
		if m.MountPath != "/run" && !strings.HasPrefix(m.MountPath, "/run/") && !strings.HasPrefix(m.MountPath, "/var/run/") {
			return nil, unsupported("container " + c.Name + ": mountPath " + m.MountPath + " outside /run")
		}
		script = append(script, "mkdir -p "+quote(m.MountPath), "mount --bind "+quote(src)+" "+quote(m.MountPath))
		if m.ReadOnly {
			script = append(script, "mount -o remount,bind,ro "+quote(m.MountPath))
		}
	}
	line := []string{"exec", "env", "-i", quote("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"), quote("HOSTNAME=" + r.pod.Name)}
	for _, e := range envList {
		line = append(line, quote(e))
	}
	uid, gid := r.ids(c)
	if uid != 0 || gid != 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			return nil, err
		}
		line = append(line, setpriv, "--reuid="+strconv.FormatInt(uid, 10), "--regid="+strconv.FormatInt(gid, 10), "--clear-groups")
	}
	line = append(line, quote(bin))
	for _, a := range c.Args {
		line = append(line, quote(expand(a, vals)))
	}
	script = append(script, strings.Join(line, " "))
	return []string{"sh", "-c", strings.Join(script, "\n")}, nil
}

// ids are the container's uid and gid (container, then pod security
// context; default root).
func (r *podRun) ids(c corev1.Container) (uid, gid int64) {
	if psc := r.pod.Spec.SecurityContext; psc != nil {
		if psc.RunAsUser != nil {
			uid = *psc.RunAsUser
		}
		if psc.RunAsGroup != nil {
			gid = *psc.RunAsGroup
		}
	}
	if sc := c.SecurityContext; sc != nil {
		if sc.RunAsUser != nil {
			uid = *sc.RunAsUser
		}
		if sc.RunAsGroup != nil {
			gid = *sc.RunAsGroup
		}
	}
	return uid, gid
}

func quote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// startContainer starts a long-running container (or native sidecar).
func (r *podRun) startContainer(c corev1.Container, init bool, vols map[string]string) error {
	argv, err := r.command(c, vols)
	if err != nil {
		return err
	}
	r.mu.Lock()
	ns := r.ns
	r.mu.Unlock()
	p, err := ns.Spawn(c.Name, r.dir, 0, argv...)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.procs[c.Name] = &container{spec: c, init: init, proc: p, startedAt: time.Now()}
	r.mu.Unlock()
	r.k.event("%s: started %s", r.name(), c.Name)
	return nil
}

// runToCompletion runs an init container and wants exit status 0.
func (r *podRun) runToCompletion(ctx context.Context, c corev1.Container, vols map[string]string) error {
	argv, err := r.command(c, vols)
	if err != nil {
		return err
	}
	r.mu.Lock()
	ns := r.ns
	r.mu.Unlock()
	p, err := ns.Spawn(c.Name, r.dir, 0, argv...)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		p.Stop()
		return fmt.Errorf("init container %s: %w", c.Name, ctx.Err())
	case <-p.Done():
	}
	if err := p.Err(); err != nil {
		return fmt.Errorf("init container %s: %w; log:\n%s", c.Name, err, netnsharness.TailLog(p.Log, 2000))
	}
	r.mu.Lock()
	r.completed[c.Name] = time.Now()
	r.mu.Unlock()
	r.k.event("%s: init container %s completed", r.name(), c.Name)
	return nil
}

// waitStartup polls the container's startup probe until it passes (no
// probe: started).
func (r *podRun) waitStartup(ctx context.Context, c corev1.Container) error {
	p := c.StartupProbe
	if p == nil {
		return nil
	}
	r.mu.Lock()
	proc := r.procs[c.Name].proc
	r.mu.Unlock()
	period := time.Duration(max(p.PeriodSeconds, 1)) * time.Second
	start := time.Now()
	var last error
	for {
		if last = r.probe(ctx, c, p); last == nil {
			r.k.event("%s: %s started (startup probe passed after %s)", r.name(), c.Name, time.Since(start).Round(time.Millisecond))
			return nil
		}
		// Poll faster than periodSeconds at first: the point is the wait,
		// not the probe's load.
		wait := min(period, 100*time.Millisecond)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: startup probe: %w (last: %w); log:\n%s", c.Name, ctx.Err(), last, netnsharness.TailLog(proc.Log, 2000))
		case <-proc.Done():
			return fmt.Errorf("%s exited before its startup probe passed; log:\n%s", c.Name, netnsharness.TailLog(proc.Log, 2000))
		case <-time.After(wait):
		}
	}
}

// probe runs one HTTP or TCP probe from the Node's network (the hub).
func (r *podRun) probe(ctx context.Context, c corev1.Container, p *corev1.Probe) error {
	timeout := time.Duration(max(p.TimeoutSeconds, 1)) * time.Second
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hub := r.k.cfg.Net.Hub
	switch {
	case p.HTTPGet != nil:
		g := p.HTTPGet
		port, err := portOf(c, g.Port)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = r.ip.String()
		}
		scheme := "http"
		if g.Scheme == corev1.URISchemeHTTPS {
			scheme = "https"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, strconv.Itoa(port))+path, nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Set(h.Name, h.Value)
		}
		req.Header.Set("User-Agent", "kube-probe/podharness")
		tr := &http.Transport{
			DialContext:       hub.Dial,
			DisableKeepAlives: true,
			// The kubelet does not verify probe certificates either.
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, //nolint:gosec // G402: kubelet probe semantics.
		}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("%s: HTTP %d", req.URL, resp.StatusCode)
		}
		return nil
	case p.TCPSocket != nil:
		port, err := portOf(c, p.TCPSocket.Port)
		if err != nil {
			return err
		}
		host := p.TCPSocket.Host
		if host == "" {
			host = r.ip.String()
		}
		conn, err := hub.Dial(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err != nil {
			return err
		}
		return conn.Close()
	default:
		return unsupported("container " + c.Name + ": probe other than httpGet or tcpSocket")
	}
}

func portOf(c corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("container %s: no port named %q", c.Name, p.StrVal)
}
