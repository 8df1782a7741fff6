package podharness

import (
	"net/netip"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "1", "POD_IP": "10.0.0.7", "EMPTY": ""}
	for _, tc := range []struct{ in, want string }{
		{"--ip=$(POD_IP)", "--ip=10.0.0.7"},
		{"$(A)$(A)", "11"},
		{"$(MISSING) stays", "$(MISSING) stays"},
		{"$$(A) is escaped", "$(A) is escaped"},
		{"$(EMPTY)x", "x"},
		{"a $ b", "a $ b"},
		{"trailing $", "trailing $"},
		{"unclosed $(A", "unclosed $(A"},
	} {
		if got := expand(tc.in, vars); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func testRun() *podRun {
	uid, gid := int64(1337), int64(1337)
	return &podRun{
		k:  &Kubelet{cfg: Config{Images: map[string]string{"img/proxy": "/bin/proxy"}, Node: "node-1"}},
		ip: netip.MustParseAddr("10.251.1.10"),
		pod: &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "web-1", Namespace: "shop", UID: "u-1", Labels: map[string]string{"app": "web"}},
			Spec: corev1.PodSpec{ServiceAccountName: "web", Containers: []corev1.Container{{
				Name: "proxy", Image: "img/proxy",
				Args: []string{"--ip=$(IP)", "--name=$(NAME)", "it's"},
				Env: []corev1.EnvVar{
					{Name: "IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
					{Name: "NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
					{Name: "BOTH", Value: "$(NAME)@$(IP)"},
				},
				SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, RunAsGroup: &gid},
				VolumeMounts:    []corev1.VolumeMount{{Name: "tok", MountPath: "/var/run/secrets/tok", ReadOnly: true}},
			}}},
		},
	}
}

// command is what runs: the mounts, the environment, the uid, the binary
// and the expanded args, exactly.
func TestCommand(t *testing.T) {
	r := testRun()
	argv, err := r.command(r.pod.Spec.Containers[0], map[string]string{"tok": "/pods/web-1/volumes/tok"})
	if err != nil {
		t.Fatal(err)
	}
	if len(argv) != 3 || argv[0] != "sh" || argv[1] != "-c" {
		t.Fatalf("argv = %q", argv)
	}
	for _, want := range []string{
		"mount -t tmpfs -o mode=0755 podharness-run /run\n",
		"mkdir -p '/var/run/secrets/tok'\nmount --bind '/pods/web-1/volumes/tok' '/var/run/secrets/tok'\nmount -o remount,bind,ro '/var/run/secrets/tok'\n",
		"'IP=10.251.1.10' 'NAME=web' 'BOTH=web@10.251.1.10'",
		"--reuid=1337 --regid=1337 --clear-groups '/bin/proxy' '--ip=10.251.1.10' '--name=web' 'it'\\''s'",
	} {
		if !strings.Contains(argv[2], want) {
			t.Errorf("script lacks %q:\n%s", want, argv[2])
		}
	}
}

func TestCommandRefusesWhatItDoesNotEmulate(t *testing.T) {
	for name, mut := range map[string]func(*corev1.Container){
		"command":       func(c *corev1.Container) { c.Command = []string{"/bin/sh"} },
		"unknown image": func(c *corev1.Container) { c.Image = "img/other" },
		"subPath":       func(c *corev1.Container) { c.VolumeMounts[0].SubPath = "x" },
		"mount outside /run": func(c *corev1.Container) {
			c.VolumeMounts[0].MountPath = "/etc/tok"
		},
		"envFrom": func(c *corev1.Container) { c.EnvFrom = []corev1.EnvFromSource{{}} },
		"secret env": func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "S", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{}}}}
		},
		"unknown field": func(c *corev1.Container) {
			c.Env = []corev1.EnvVar{{Name: "F", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.hostname"}}}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			r := testRun()
			c := r.pod.Spec.Containers[0]
			c.VolumeMounts = append([]corev1.VolumeMount(nil), c.VolumeMounts...)
			mut(&c)
			if _, err := r.command(c, map[string]string{"tok": "/x"}); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestPortOf(t *testing.T) {
	c := corev1.Container{Name: "app", Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}}}
	for _, tc := range []struct {
		port intstr.IntOrString
		want int
		err  bool
	}{
		{intstr.FromInt32(15020), 15020, false},
		{intstr.FromString("http"), 8080, false},
		{intstr.FromString("grpc"), 0, true},
	} {
		got, err := portOf(c, tc.port)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("portOf(%v) = %d, %v; want %d, error %v", tc.port.String(), got, err, tc.want, tc.err)
		}
	}
}
