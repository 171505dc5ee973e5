// Schema checks of Knative, Istio and Prometheus-operator objects with the @kubernetes-models
// packages (schemas generated from each project's Go types / CRDs). Used by `genrec deploy check`;
// also runs on its own:
//
//   node validate.mjs FILE.yaml ...     YAML or JSON files, several documents each
//   node validate.mjs < objects.json    a JSON array of objects on stdin
//
// Prints a JSON array, one entry per object in input order:
//   {file, index, apiVersion, kind, name, status, errors: [{path, message}], checked: [paths]}
// status: "valid" | "invalid" | "partial" (only parts had a model, see PARTS) | "unknown" (no model).
// The models check types, required fields and enums; they accept unknown fields. Known places
// where a model is stricter than the real system (GAPS) are not reported.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

const PACKAGES = [
  [/(^|\.)knative\.dev$/, "@kubernetes-models/knative"],
  [/(^|\.)istio\.io$/, "@kubernetes-models/istio"],
  [/^monitoring\.coreos\.com$/, "@kubernetes-models/prometheus-operator"],
];

// Kinds no package has, whose spec embeds Knative duck types: those parts are checked.
// KafkaSource (eventing-kafka-broker) embeds duckv1.SourceSpec and eventingduckv1.DeliverySpec.
const PARTS = {
  "sources.knative.dev/v1beta1/KafkaSource": {
    "spec.sink": "duck.knative.dev/v1/Destination",
    "spec.delivery": "duck.knative.dev/v1/DeliverySpec",
    "spec.ceOverrides": "duck.knative.dev/v1/CloudEventOverrides",
  },
};

// Where a model is stricter than the system it models. Knative Serving's models reuse Kubernetes'
// Container, whose probe actions require a port; Knative fills in the container's port (and rejects
// any other), so a Knative probe without one is right.
const GAPS = [
  {
    group: /^serving\.knative\.dev$/,
    path: /^spec\.template\.spec\.containers\.\d+\.(readiness|liveness|startup)Probe\.(httpGet|tcpSocket|grpc)\.port$/,
    keyword: "required",
  },
];

function isGap(apiVersion, err) {
  const group = apiVersion.split("/").slice(0, -1).join("/");
  return GAPS.some((g) => g.group.test(group) && g.keyword === err.keyword && g.path.test(err.path.join(".")));
}

async function model(apiVersion) {
  const [group, version, kind] = apiVersion.split("/");
  const pkg = PACKAGES.find(([pattern]) => pattern.test(group));
  if (!pkg || !version || !kind) return null;
  try {
    return (await import(`${pkg[1]}/${group}/${version}/${kind}`))[kind] ?? null;
  } catch (e) {
    if (e.code === "ERR_MODULE_NOT_FOUND") return null;
    throw e;
  }
}

function pathOf(prefix, err) {
  const parts = [...prefix, ...(err.instancePath || "").split("/").slice(1)];
  const extra = err.params?.missingProperty ?? err.params?.additionalProperty;
  if (extra !== undefined) parts.push(extra);
  return parts.map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
}

function check(Model, data, prefix) {
  try {
    new Model(data).validate();
    return [];
  } catch (e) {
    if (!e.errors) return [{ path: prefix, message: e.message }];
    return e.errors.map((err) => ({ path: pathOf(prefix, err), message: err.message, keyword: err.keyword }));
  }
}

function get(obj, dotted) {
  return dotted.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

async function validate(obj) {
  const apiVersion = String(obj?.apiVersion ?? "");
  const kind = String(obj?.kind ?? "");
  const Model = await model(`${apiVersion}/${kind}`);
  if (Model) {
    const errors = check(Model, obj, []).filter((err) => !isGap(apiVersion, err));
    return { status: errors.length ? "invalid" : "valid", errors, checked: [""] };
  }
  const parts = PARTS[`${apiVersion}/${kind}`];
  if (!parts) return { status: "unknown", errors: [], checked: [] };
  const errors = [];
  const checked = [];
  for (const [where, ref] of Object.entries(parts)) {
    const value = get(obj, where);
    if (value === undefined) continue;
    errors.push(...check(await model(ref), value, where.split(".")));
    checked.push(where);
  }
  return { status: errors.length ? "invalid" : "partial", errors, checked };
}

function inputs() {
  const files = process.argv.slice(2);
  if (!files.length) {
    return JSON.parse(readFileSync(0, "utf8")).map((obj, index) => ({ file: "-", index, obj }));
  }
  return files.flatMap((file) =>
    parseAllDocuments(readFileSync(file, "utf8"))
      .map((doc) => doc.toJS())
      .filter((obj) => obj != null)
      .map((obj, index) => ({ file, index, obj })),
  );
}

const results = [];
for (const { file, index, obj } of inputs()) {
  const r = await validate(obj);
  results.push({ file, index, apiVersion: obj?.apiVersion, kind: obj?.kind, name: obj?.metadata?.name, ...r });
}
process.stdout.write(JSON.stringify(results) + "\n");
