package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"
)

// The structs below declare only the Kubernetes fields the manifests use, by
// their API names: decoding with known fields rejects a misspelt or
// misplaced field (a readinessProbe under resources, say) the way the API
// server's strict field validation would.

type typeMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

type labelSelector struct {
	MatchLabels      map[string]string `yaml:"matchLabels"`
	MatchExpressions []struct {
		Key      string   `yaml:"key"`
		Operator string   `yaml:"operator"`
		Values   []string `yaml:"values"`
	} `yaml:"matchExpressions"`
}

type namespace struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
}

type serviceAccount struct {
	typeMeta                     `yaml:",inline"`
	Metadata                     objectMeta `yaml:"metadata"`
	AutomountServiceAccountToken *bool      `yaml:"automountServiceAccountToken"`
}

type configMap struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta        `yaml:"metadata"`
	Data     map[string]string `yaml:"data"`
}

type secret struct {
	typeMeta   `yaml:",inline"`
	Metadata   objectMeta        `yaml:"metadata"`
	Type       string            `yaml:"type"`
	StringData map[string]string `yaml:"stringData"`
	Data       map[string]string `yaml:"data"`
}

type deployment struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Replicas             *int          `yaml:"replicas"`
		RevisionHistoryLimit *int          `yaml:"revisionHistoryLimit"`
		Selector             labelSelector `yaml:"selector"`
		Strategy             struct {
			Type          string `yaml:"type"`
			RollingUpdate *struct {
				MaxSurge       any `yaml:"maxSurge"`
				MaxUnavailable any `yaml:"maxUnavailable"`
			} `yaml:"rollingUpdate"`
		} `yaml:"strategy"`
		Template struct {
			Metadata objectMeta `yaml:"metadata"`
			Spec     podSpec    `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	AutomountServiceAccountToken  *bool  `yaml:"automountServiceAccountToken"`
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               *struct {
		RunAsNonRoot   *bool           `yaml:"runAsNonRoot"`
		RunAsUser      *int64          `yaml:"runAsUser"`
		RunAsGroup     *int64          `yaml:"runAsGroup"`
		FSGroup        *int64          `yaml:"fsGroup"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	TopologySpreadConstraints []struct {
		MaxSkew           int           `yaml:"maxSkew"`
		TopologyKey       string        `yaml:"topologyKey"`
		WhenUnsatisfiable string        `yaml:"whenUnsatisfiable"`
		LabelSelector     labelSelector `yaml:"labelSelector"`
	} `yaml:"topologySpreadConstraints"`
	InitContainers []container `yaml:"initContainers"`
	Containers     []container `yaml:"containers"`
	Volumes        []struct {
		Name     string `yaml:"name"`
		EmptyDir *struct {
			Medium    string `yaml:"medium"`
			SizeLimit string `yaml:"sizeLimit"`
		} `yaml:"emptyDir"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type container struct {
	Name            string   `yaml:"name"`
	Image           string   `yaml:"image"`
	ImagePullPolicy string   `yaml:"imagePullPolicy"`
	Command         []string `yaml:"command"`
	Args            []string `yaml:"args"`
	Env             []struct {
		Name      string `yaml:"name"`
		Value     string `yaml:"value"`
		ValueFrom any    `yaml:"valueFrom"`
	} `yaml:"env"`
	EnvFrom []struct {
		ConfigMapRef *struct {
			Name string `yaml:"name"`
		} `yaml:"configMapRef"`
		SecretRef *struct {
			Name string `yaml:"name"`
		} `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Ports []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
		Protocol      string `yaml:"protocol"`
	} `yaml:"ports"`
	StartupProbe   *probe `yaml:"startupProbe"`
	LivenessProbe  *probe `yaml:"livenessProbe"`
	ReadinessProbe *probe `yaml:"readinessProbe"`
	Resources      struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext *struct {
		RunAsNonRoot             *bool  `yaml:"runAsNonRoot"`
		RunAsUser                *int64 `yaml:"runAsUser"`
		RunAsGroup               *int64 `yaml:"runAsGroup"`
		AllowPrivilegeEscalation *bool  `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool  `yaml:"readOnlyRootFilesystem"`
		Privileged               *bool  `yaml:"privileged"`
		Capabilities             *struct {
			Add  []string `yaml:"add"`
			Drop []string `yaml:"drop"`
		} `yaml:"capabilities"`
		SeccompProfile *seccompProfile `yaml:"seccompProfile"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

type probe struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
	InitialDelaySeconds int `yaml:"initialDelaySeconds"`
	PeriodSeconds       int `yaml:"periodSeconds"`
	TimeoutSeconds      int `yaml:"timeoutSeconds"`
	FailureThreshold    int `yaml:"failureThreshold"`
	SuccessThreshold    int `yaml:"successThreshold"`
}

type service struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		Type                     string            `yaml:"type"`
		ClusterIP                string            `yaml:"clusterIP"`
		PublishNotReadyAddresses bool              `yaml:"publishNotReadyAddresses"`
		Selector                 map[string]string `yaml:"selector"`
		Ports                    []struct {
			Name       string `yaml:"name"`
			Port       int    `yaml:"port"`
			TargetPort any    `yaml:"targetPort"`
			Protocol   string `yaml:"protocol"`
		} `yaml:"ports"`
	} `yaml:"spec"`
}

type podDisruptionBudget struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		MaxUnavailable             any           `yaml:"maxUnavailable"`
		MinAvailable               any           `yaml:"minAvailable"`
		UnhealthyPodEvictionPolicy string        `yaml:"unhealthyPodEvictionPolicy"`
		Selector                   labelSelector `yaml:"selector"`
	} `yaml:"spec"`
}

type serviceMonitor struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		JobLabel          string        `yaml:"jobLabel"`
		Selector          labelSelector `yaml:"selector"`
		NamespaceSelector *struct {
			MatchNames []string `yaml:"matchNames"`
		} `yaml:"namespaceSelector"`
		Endpoints []struct {
			Port          string `yaml:"port"`
			Path          string `yaml:"path"`
			Interval      string `yaml:"interval"`
			ScrapeTimeout string `yaml:"scrapeTimeout"`
		} `yaml:"endpoints"`
	} `yaml:"spec"`
}

type prometheusRule struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     ruleFile   `yaml:"spec"`
}

type scaleTargetRef struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Name       string `yaml:"name"`
}

type hpaBehavior struct {
	ScaleUp   *hpaRules `yaml:"scaleUp"`
	ScaleDown *hpaRules `yaml:"scaleDown"`
}

type hpaRules struct {
	StabilizationWindowSeconds *int   `yaml:"stabilizationWindowSeconds"`
	SelectPolicy               string `yaml:"selectPolicy"`
	Policies                   []struct {
		Type          string `yaml:"type"`
		Value         int    `yaml:"value"`
		PeriodSeconds int    `yaml:"periodSeconds"`
	} `yaml:"policies"`
}

type scaledObject struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ScaleTargetRef  scaleTargetRef `yaml:"scaleTargetRef"`
		MinReplicaCount *int           `yaml:"minReplicaCount"`
		MaxReplicaCount *int           `yaml:"maxReplicaCount"`
		PollingInterval int            `yaml:"pollingInterval"`
		CooldownPeriod  int            `yaml:"cooldownPeriod"`
		Advanced        *struct {
			HorizontalPodAutoscalerConfig *struct {
				Behavior *hpaBehavior `yaml:"behavior"`
			} `yaml:"horizontalPodAutoscalerConfig"`
		} `yaml:"advanced"`
		Triggers []struct {
			Type              string            `yaml:"type"`
			Metadata          map[string]string `yaml:"metadata"`
			AuthenticationRef *struct {
				Name string `yaml:"name"`
			} `yaml:"authenticationRef"`
		} `yaml:"triggers"`
	} `yaml:"spec"`
}

type horizontalPodAutoscaler struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta `yaml:"metadata"`
	Spec     struct {
		ScaleTargetRef scaleTargetRef `yaml:"scaleTargetRef"`
		MinReplicas    *int           `yaml:"minReplicas"`
		MaxReplicas    int            `yaml:"maxReplicas"`
		Metrics        []struct {
			Type     string `yaml:"type"`
			External *struct {
				Metric struct {
					Name     string         `yaml:"name"`
					Selector *labelSelector `yaml:"selector"`
				} `yaml:"metric"`
				Target struct {
					Type         string `yaml:"type"`
					Value        string `yaml:"value"`
					AverageValue string `yaml:"averageValue"`
				} `yaml:"target"`
			} `yaml:"external"`
		} `yaml:"metrics"`
		Behavior *hpaBehavior `yaml:"behavior"`
	} `yaml:"spec"`
}

type kustomization struct {
	typeMeta  `yaml:",inline"`
	Namespace string   `yaml:"namespace"`
	Resources []string `yaml:"resources"`
	Images    []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

// manifests are the decoded files of deploy/kubernetes.
type manifests struct {
	files          map[string]typeMeta
	kustomization  kustomization
	namespace      namespace
	serviceAccount serviceAccount
	configMap      configMap
	secret         secret
	deployment     deployment
	service        service
	pdb            podDisruptionBudget
	serviceMonitor serviceMonitor
	rule           prometheusRule
	scaledObject   scaledObject
	hpa            horizontalPodAutoscaler
}

const k8sNamespace = "logpush-onboard"

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)

// loadManifests decodes every file of deploy/kubernetes strictly into the
// struct of its kind; a kind seen twice or not known fails.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	m := manifests{files: map[string]typeMeta{}}
	targets := map[typeMeta]any{
		{"kustomize.config.k8s.io/v1beta1", "Kustomization"}: &m.kustomization,
		{"v1", "Namespace"}:                            &m.namespace,
		{"v1", "ServiceAccount"}:                       &m.serviceAccount,
		{"v1", "ConfigMap"}:                            &m.configMap,
		{"v1", "Secret"}:                               &m.secret,
		{"apps/v1", "Deployment"}:                      &m.deployment,
		{"v1", "Service"}:                              &m.service,
		{"policy/v1", "PodDisruptionBudget"}:           &m.pdb,
		{"monitoring.coreos.com/v1", "ServiceMonitor"}: &m.serviceMonitor,
		{"monitoring.coreos.com/v1", "PrometheusRule"}: &m.rule,
		{"keda.sh/v1alpha1", "ScaledObject"}:           &m.scaledObject,
		{"autoscaling/v2", "HorizontalPodAutoscaler"}:  &m.hpa,
	}
	paths, err := filepath.Glob(filepath.Join("kubernetes", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if !strings.HasSuffix(p, ".yaml") {
			t.Errorf("%s: only .yaml files belong in deploy/kubernetes", p)
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var tm typeMeta
		if err := yaml.Load(b, &tm); err != nil {
			t.Errorf("%s: %v (one document per file)", p, err)
			continue
		}
		v, ok := targets[tm]
		if !ok {
			t.Errorf("%s: unexpected apiVersion %q kind %q", p, tm.APIVersion, tm.Kind)
			continue
		}
		delete(targets, tm)
		if err := yaml.Load(b, v, yaml.WithKnownFields()); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		m.files[filepath.Base(p)] = tm
	}
	for tm := range targets {
		t.Errorf("no manifest of kind %s (%s)", tm.Kind, tm.APIVersion)
	}
	if t.Failed() {
		t.FailNow()
	}
	return m
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := loadManifests(t)

	metas := map[string]objectMeta{
		"Namespace": m.namespace.Metadata, "ServiceAccount": m.serviceAccount.Metadata, "ConfigMap": m.configMap.Metadata,
		"Secret": m.secret.Metadata, "Deployment": m.deployment.Metadata, "Service": m.service.Metadata,
		"PodDisruptionBudget": m.pdb.Metadata, "ServiceMonitor": m.serviceMonitor.Metadata, "PrometheusRule": m.rule.Metadata,
		"ScaledObject": m.scaledObject.Metadata, "HorizontalPodAutoscaler": m.hpa.Metadata,
	}
	for kind, md := range metas {
		if !dnsLabel.MatchString(md.Name) {
			t.Errorf("%s: name %q is not a DNS label", kind, md.Name)
		}
		wantNS := k8sNamespace
		if kind == "Namespace" {
			wantNS = ""
		}
		if md.Namespace != wantNS {
			t.Errorf("%s %s: namespace %q, want %q", kind, md.Name, md.Namespace, wantNS)
		}
		if md.Labels["app.kubernetes.io/name"] != "logpush-onboard" {
			t.Errorf("%s %s: needs label app.kubernetes.io/name: logpush-onboard", kind, md.Name)
		}
	}
	if m.namespace.Metadata.Name != k8sNamespace || m.kustomization.Namespace != k8sNamespace {
		t.Errorf("namespace %q, kustomization namespace %q, want %q", m.namespace.Metadata.Name, m.kustomization.Namespace, k8sNamespace)
	}
	if m.namespace.Metadata.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Error("namespace: want pod-security.kubernetes.io/enforce: restricted")
	}

	t.Run("deployment", func(t *testing.T) { checkDeployment(t, m) })
	t.Run("service", func(t *testing.T) { checkService(t, m) })
	t.Run("monitoring", func(t *testing.T) { checkMonitoring(t, m) })
	t.Run("autoscaling", func(t *testing.T) { checkAutoscaling(t, m) })
	t.Run("kustomization", func(t *testing.T) { checkKustomization(t, m) })
}

func checkDeployment(t *testing.T, m manifests) {
	d := m.deployment
	pod := d.Spec.Template.Spec
	if !subset(d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) || len(d.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("selector %v does not select the pod labels %v", d.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels)
	}
	if pod.ServiceAccountName != m.serviceAccount.Metadata.Name {
		t.Errorf("serviceAccountName %q, want %q", pod.ServiceAccountName, m.serviceAccount.Metadata.Name)
	}
	if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
		t.Error("pod: automountServiceAccountToken: false (the worker needs no Kubernetes API)")
	}
	psc := pod.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.SeccompProfile == nil || psc.SeccompProfile.Type != "RuntimeDefault" {
		t.Error("pod securityContext: want runAsNonRoot: true and seccompProfile RuntimeDefault")
	}
	if len(pod.Containers) == 0 {
		t.Fatal("no containers")
	}
	volumes := map[string]bool{}
	for _, v := range pod.Volumes {
		volumes[v.Name] = true
	}
	for _, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		if c.Image == "" {
			t.Errorf("%s: no image", c.Name)
		}
		for _, res := range []string{"cpu", "memory"} {
			if c.Resources.Requests[res] == "" {
				t.Errorf("%s: no resources.requests.%s", c.Name, res)
			}
		}
		if c.Resources.Limits["memory"] == "" {
			t.Errorf("%s: no resources.limits.memory", c.Name)
		}
		sc := c.SecurityContext
		switch {
		case sc == nil:
			t.Errorf("%s: no securityContext", c.Name)
		default:
			nonRoot := (sc.RunAsNonRoot != nil && *sc.RunAsNonRoot) || (psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot)
			uid := sc.RunAsUser
			if uid == nil && psc != nil {
				uid = psc.RunAsUser
			}
			if !nonRoot || uid == nil || *uid == 0 {
				t.Errorf("%s: must run as a non-root numeric user (runAsNonRoot and runAsUser != 0)", c.Name)
			}
			if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
				t.Errorf("%s: allowPrivilegeEscalation must be false", c.Name)
			}
			if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				t.Errorf("%s: readOnlyRootFilesystem must be true", c.Name)
			}
			if sc.Privileged != nil && *sc.Privileged {
				t.Errorf("%s: privileged", c.Name)
			}
			if sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []string{"ALL"}) || len(sc.Capabilities.Add) > 0 {
				t.Errorf("%s: capabilities must drop ALL and add none", c.Name)
			}
		}
		for _, vm := range c.VolumeMounts {
			if !volumes[vm.Name] {
				t.Errorf("%s: volumeMount %q names no volume", c.Name, vm.Name)
			}
		}
		for _, ef := range c.EnvFrom {
			if ef.ConfigMapRef != nil && ef.ConfigMapRef.Name != m.configMap.Metadata.Name {
				t.Errorf("%s: envFrom configMap %q is not in deploy/kubernetes", c.Name, ef.ConfigMapRef.Name)
			}
			if ef.SecretRef != nil && ef.SecretRef.Name != m.secret.Metadata.Name {
				t.Errorf("%s: envFrom secret %q is not in deploy/kubernetes", c.Name, ef.SecretRef.Name)
			}
		}
	}

	w := pod.Containers[0]
	if len(w.Args) == 0 || w.Args[0] != "worker" {
		t.Errorf("container %s: args %v, want the worker subcommand", w.Name, w.Args)
	}
	if len(w.Ports) != 1 || w.Ports[0].Name != "metrics" || w.Ports[0].ContainerPort != 9464 {
		t.Errorf("container %s: want one port named metrics on 9464 (the web UI gets none), got %+v", w.Name, w.Ports)
	}
	checkWebUIPrivate(t, "container "+w.Name, w.Args, m.configMap.Data)
	for name, p := range map[string]struct {
		probe *probe
		path  string
	}{"livenessProbe": {w.LivenessProbe, "/healthz"}, "readinessProbe": {w.ReadinessProbe, "/readyz"}} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			t.Errorf("%s: no %s httpGet", w.Name, name)
		case p.probe.HTTPGet.Path != p.path:
			t.Errorf("%s: %s path %q, want %q", w.Name, name, p.probe.HTTPGet.Path, p.path)
		case p.probe.HTTPGet.Port != "metrics" && p.probe.HTTPGet.Port != 9464:
			t.Errorf("%s: %s port %v, want metrics (9464)", w.Name, name, p.probe.HTTPGet.Port)
		}
	}
	// The pod must outlive the worker's drain on SIGTERM.
	shutdown := 20 * time.Second
	if i := slices.Index(w.Args, "--shutdown-timeout"); i >= 0 && i+1 < len(w.Args) {
		d, err := time.ParseDuration(w.Args[i+1])
		if err != nil {
			t.Errorf("--shutdown-timeout %q: %v", w.Args[i+1], err)
		}
		shutdown = d
	}
	if g := pod.TerminationGracePeriodSeconds; g == nil || time.Duration(*g)*time.Second <= shutdown {
		t.Errorf("terminationGracePeriodSeconds must exceed the worker's --shutdown-timeout %s", shutdown)
	}

	env := envNames(t)
	for k := range m.configMap.Data {
		if !env[k] {
			t.Errorf("configmap: %s is not an environment variable the CLI reads", k)
		}
	}
	for k := range m.secret.StringData {
		if !env[k] {
			t.Errorf("secret: %s is not an environment variable the CLI reads", k)
		}
	}
	if m.secret.StringData["CLOUDFLARE_API_TOKEN"] == "" || m.secret.StringData["REDIS_URL"] == "" {
		t.Error("secret: needs CLOUDFLARE_API_TOKEN and REDIS_URL")
	}
	if m.pdb.Spec.MaxUnavailable == nil && m.pdb.Spec.MinAvailable == nil {
		t.Error("pdb: needs maxUnavailable or minAvailable")
	}
	if !subset(m.pdb.Spec.Selector.MatchLabels, d.Spec.Template.Metadata.Labels) {
		t.Error("pdb: selector does not select the worker pods")
	}
}

func checkService(t *testing.T, m manifests) {
	s := m.service
	pod := m.deployment.Spec.Template
	if len(s.Spec.Selector) == 0 || !subset(s.Spec.Selector, pod.Metadata.Labels) {
		t.Errorf("selector %v does not select the worker pods %v", s.Spec.Selector, pod.Metadata.Labels)
	}
	if !s.Spec.PublishNotReadyAddresses {
		t.Error("publishNotReadyAddresses must be true: a paused queue makes every worker unready, and they must still be scraped")
	}
	if len(s.Spec.Ports) == 0 {
		t.Fatal("no ports")
	}
	for _, p := range s.Spec.Ports {
		found := false
		for _, cp := range pod.Spec.Containers[0].Ports {
			found = found || p.TargetPort == cp.Name || p.TargetPort == cp.ContainerPort
		}
		if !found {
			t.Errorf("port %s: targetPort %v is no container port", p.Name, p.TargetPort)
		}
	}
}

func checkMonitoring(t *testing.T, m manifests) {
	sm := m.serviceMonitor
	if !subset(sm.Spec.Selector.MatchLabels, m.service.Metadata.Labels) || len(sm.Spec.Selector.MatchLabels) == 0 {
		t.Errorf("servicemonitor selector %v does not select the service labels %v", sm.Spec.Selector.MatchLabels, m.service.Metadata.Labels)
	}
	if got := m.service.Metadata.Labels[sm.Spec.JobLabel]; got != job {
		t.Errorf("servicemonitor jobLabel %q gives job %q, want %q (the alerts and the dashboard select it)", sm.Spec.JobLabel, got, job)
	}
	if len(sm.Spec.Endpoints) == 0 {
		t.Fatal("servicemonitor: no endpoints")
	}
	for _, e := range sm.Spec.Endpoints {
		ok := false
		for _, p := range m.service.Spec.Ports {
			ok = ok || p.Name == e.Port
		}
		if !ok || e.Path != "/metrics" {
			t.Errorf("servicemonitor endpoint port %q path %q: want a service port name and /metrics", e.Port, e.Path)
		}
	}
	var rf ruleFile
	loadStrict(t, filepath.Join("prometheus", "alerts.yml"), &rf)
	if !reflect.DeepEqual(m.rule.Spec, rf) {
		t.Error("kubernetes/prometheusrule.yaml spec.groups differ from prometheus/alerts.yml: copy the groups over")
	}
}

func checkAutoscaling(t *testing.T, m manifests) {
	so, hpa := m.scaledObject.Spec, m.hpa.Spec
	for name, ref := range map[string]scaleTargetRef{"scaledobject": so.ScaleTargetRef, "hpa": hpa.ScaleTargetRef} {
		if ref.Name != m.deployment.Metadata.Name || (ref.Kind != "" && ref.Kind != "Deployment") {
			t.Errorf("%s: scaleTargetRef %+v is not the worker Deployment", name, ref)
		}
	}
	// The workers export the metric the scaler reads: at zero replicas
	// nothing would report a backlog, so nothing would scale up.
	if so.MinReplicaCount == nil || *so.MinReplicaCount < 1 || hpa.MinReplicas == nil || *hpa.MinReplicas < 1 {
		t.Error("minReplicaCount / minReplicas must be at least 1")
	}
	if so.MaxReplicaCount == nil || *so.MaxReplicaCount < *so.MinReplicaCount || hpa.MaxReplicas < *hpa.MinReplicas {
		t.Error("max replicas below min replicas")
	}
	if len(so.Triggers) != 1 || so.Triggers[0].Type != "prometheus" {
		t.Fatalf("scaledobject: want one prometheus trigger, got %+v", so.Triggers)
	}
	md := so.Triggers[0].Metadata
	for _, k := range []string{"serverAddress", "query", "threshold"} {
		if md[k] == "" {
			t.Errorf("scaledobject trigger: no %s", k)
		}
	}
	for k := range md {
		if !slices.Contains([]string{"serverAddress", "query", "threshold", "activationThreshold", "namespace", "ignoreNullValues", "unsafeSsl", "customHeaders", "queryParameters"}, k) {
			t.Errorf("scaledobject trigger: unknown prometheus scaler field %q", k)
		}
	}
	if len(hpa.Metrics) != 1 || hpa.Metrics[0].External == nil || hpa.Metrics[0].External.Target.AverageValue == "" {
		t.Errorf("hpa: want one External metric with an averageValue target")
	}
}

func checkKustomization(t *testing.T, m manifests) {
	res := m.kustomization.Resources
	for _, r := range res {
		if _, ok := m.files[r]; !ok {
			t.Errorf("kustomization: resource %s is not a manifest in deploy/kubernetes", r)
		}
	}
	for f := range m.files {
		listed := slices.Contains(res, f)
		switch f {
		case "kustomization.yaml":
		case "secret.yaml":
			if listed {
				t.Error("kustomization: secret.yaml is a template; applying it would overwrite the real credential with its placeholder")
			}
		case "hpa.yaml":
			if listed && slices.Contains(res, "keda-scaledobject.yaml") {
				t.Error("kustomization: hpa.yaml and keda-scaledobject.yaml both listed: they would fight over the replica count")
			}
		default:
			if !listed {
				t.Errorf("kustomization: %s is not listed in resources", f)
			}
		}
	}
	// kubectl's built-in kustomize renders the whole set offline.
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Log("kubectl not found: kustomize build not checked")
		return
	}
	out, err := exec.Command(kubectl, "kustomize", "kubernetes").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	if n := len(regexp.MustCompile(`(?m)^kind: `).FindAll(out, -1)); n != len(res) {
		t.Errorf("kubectl kustomize rendered %d objects, want %d", n, len(res))
	}
}

// subset reports whether every label of sel is in labels.
func subset(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// scalerQueries are the PromQL of the KEDA trigger and of the
// prometheus-adapter rule documented in hpa.yaml.
func scalerQueries(t *testing.T) []namedExpr {
	t.Helper()
	var so scaledObject
	loadStrict(t, filepath.Join("kubernetes", "keda-scaledobject.yaml"), &so)
	out := []namedExpr{}
	for _, tr := range so.Spec.Triggers {
		out = append(out, namedExpr{"keda trigger", tr.Metadata["query"]})
	}
	b, err := os.ReadFile(filepath.Join("kubernetes", "hpa.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	mq := regexp.MustCompile(`metricsQuery: '(.+)'`).FindSubmatch(b)
	if mq == nil {
		t.Fatal("hpa.yaml: the prometheus-adapter metricsQuery comment is gone")
	}
	// The adapter fills <<.LabelMatchers>> from the HPA's selector.
	q := strings.Replace(string(mq[1]), "<<.LabelMatchers>>", `state=~"pending|active"`, 1)
	return append(out, namedExpr{"hpa adapter rule", q})
}
