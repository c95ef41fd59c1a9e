// New job: dataset, teacher and student; distillation weights with the paper's presets; schedule.
import { ApiError, get, post, type FieldError } from "../api";
import { field, h, replace } from "../dom";
import { archLabel } from "../format";
import { navigate } from "../router";
import { applyPreset, defaultDistill, defaultSpec, detectPreset, getPath, kdEnabled, loadSpecCatalog, setPath } from "../spec";
import type { Dataset, DistillSpec, Job, JobSpec, ListOf, SpecCatalog, Teacher } from "../types";
import { card, emptyState, errorState, loading, pageHeader, toast } from "../components/ui";

type Kind = "number" | "int" | "optint" | "optnumber" | "text" | "bool" | "select";

/** The New job page. */
export function renderNewJob(main: HTMLElement, query: URLSearchParams): void {
  replace(main, loading());
  const fromId = query.get("from");
  void Promise.all([
    loadSpecCatalog(),
    get<ListOf<Dataset>>("/datasets", { limit: 200 }),
    get<ListOf<Teacher>>("/teachers", { limit: 200 }),
    fromId ? get<Job>(`/jobs/${fromId}`) : Promise.resolve(null),
  ]).then(
    ([catalog, datasets, teachers, source]) => build(main, catalog, datasets.data, teachers.data, source, query),
    (err: Error) => replace(main, errorState(err.message, () => renderNewJob(main, query))),
  );
}

function build(main: HTMLElement, catalog: SpecCatalog, datasets: Dataset[], teachers: Teacher[], source: Job | null, query: URLSearchParams): void {
  const ready = datasets.filter((d) => d.status === "ready");
  const readyTeachers = teachers.filter((t) => t.status === "ready");
  const initialKind = (source?.spec.kind ?? query.get("kind") ?? "distill") as "distill" | "teacher";
  const spec: JobSpec = source ? structuredClone(source.spec) : defaultSpec(catalog, initialKind === "teacher" ? "teacher" : "distill");
  spec.distill = { ...defaultDistill(catalog), ...(spec.distill ?? {}) };
  if (!spec.data.dataset_id && ready.length) spec.data.dataset_id = Number(query.get("dataset") ?? ready[0].id);
  if (spec.kind === "distill" && !spec.teacher?.teacher_id && readyTeachers.length) {
    const t = readyTeachers[0];
    spec.teacher = { ...(spec.teacher ?? {}), teacher_id: t.id, arch: t.arch, fpn_channels: t.fpn_channels };
  }
  let name = source ? `${source.name || `job ${source.id}`} (copy)` : "";
  const specRecord = spec as unknown as Record<string, unknown>;

  const summary = h("div", { id: "form-errors", role: "alert" });
  const bindings = new Map<string, HTMLElement>();

  /** An input bound to a path of the spec. */
  const input = (path: string, kind: Kind, attrs: Record<string, unknown> = {}, options?: [string, string][]): HTMLElement => {
    const value = getPath(spec, path);
    let el: HTMLInputElement | HTMLSelectElement;
    if (kind === "select") {
      el = h("select", { name: path }, (options ?? []).map(([v, label]) => h("option", { value: v, selected: String(value) === v }, label)));
    } else if (kind === "bool") {
      el = h("input", { type: "checkbox", name: path, checked: Boolean(value) });
    } else {
      el = h("input", {
        name: path,
        type: kind === "text" ? "text" : "number",
        step: kind === "int" || kind === "optint" ? 1 : "any",
        value: value === null || value === undefined ? "" : String(value),
        inputmode: kind === "text" ? null : "decimal",
        ...attrs,
      });
    }
    // "input" as well as "change": the spec is current while the user types, and an error
    // clears before the submit button is pressed (a layout shift under the pointer loses clicks).
    const update = () => {
      clearError(path);
      let v: unknown;
      if (kind === "bool") v = (el as HTMLInputElement).checked;
      else if (kind === "select" || kind === "text") v = el.value;
      else if (el.value === "") v = kind === "optint" || kind === "optnumber" ? null : undefined;
      else v = Number(el.value);
      if (v !== undefined) setPath(specRecord, path, v);
      if (path.startsWith("distill.")) markPreset();
    };
    el.addEventListener("input", update);
    el.addEventListener("change", update);
    bindings.set(path, el);
    return el;
  };

  const clearError = (path: string) => {
    const host = main.querySelector(`[data-path="${CSS.escape(path)}"]`);
    host?.classList.remove("has-error");
    const err = host?.querySelector(".field-error");
    if (err) err.textContent = "";
  };

  const showErrors = (errors: FieldError[]) => {
    main.querySelectorAll(".has-error").forEach((el) => el.classList.remove("has-error"));
    main.querySelectorAll(".field-error").forEach((el) => (el.textContent = ""));
    const unplaced: FieldError[] = [];
    let first: HTMLElement | null = null;
    for (const e of errors) {
      // The closest field that exists: "distill.levels.p2.spatial" or else its parents.
      let path = e.path;
      let host: HTMLElement | null = null;
      while (path) {
        host = main.querySelector<HTMLElement>(`[data-path="${CSS.escape(path)}"]`);
        if (host) break;
        path = path.includes(".") ? path.slice(0, path.lastIndexOf(".")) : "";
      }
      if (host) {
        host.classList.add("has-error");
        const slot = host.querySelector(".field-error");
        if (slot) slot.textContent = e.message;
        first ??= host;
      } else {
        unplaced.push(e);
      }
    }
    replace(
      summary,
      errors.length
        ? h(
            "div",
            { class: "alert alert-error" },
            h("strong", null, "The job was not created. "),
            errors.length === 1 ? "Fix the field marked below." : `Fix the ${errors.length} problems marked below.`,
            unplaced.length ? h("ul", null, unplaced.map((e) => h("li", null, e.path ? `${e.path}: ${e.message}` : e.message))) : null,
          )
        : null,
    );
    (first?.querySelector("input,select") as HTMLElement | null)?.focus();
    if (!first) summary.scrollIntoView({ block: "center" });
  };

  // --- basics ---------------------------------------------------------------------------------
  const nameInput = h("input", { type: "text", name: "name", value: name, maxlength: 200, placeholder: "e.g. hkd-visdrone-mbv2", oninput: (e: Event) => (name = (e.target as HTMLInputElement).value) });
  const kindRadios = h(
    "div",
    { class: "segmented", role: "radiogroup", "aria-label": "Kind of job" },
    (
      [
        ["distill", "Distil a student"],
        ["teacher", "Train a teacher"],
      ] as const
    ).map(([k, label]) =>
      h(
        "label",
        { class: "seg" },
        h("input", {
          type: "radio",
          name: "kind",
          value: k,
          checked: spec.kind === k,
          onchange: () => {
            spec.kind = k;
            if (k === "distill" && !spec.student) spec.student = structuredClone(catalog.defaults.student);
            renderModels();
          },
        }),
        h("span", null, label),
      ),
    ),
  );

  const datasetControl = ready.length
    ? input("data.dataset_id", "select", {}, ready.map((d) => [String(d.id), `${d.name} (${d.statistics?.images ?? "?"} images)`]))
    : null;
  datasetControl?.addEventListener("change", () => {
    spec.data.dataset_id = Number((datasetControl as HTMLSelectElement).value);
  });

  const dataCard = card(
    "Data",
    ready.length
      ? h(
          "div",
          { class: "grid" },
          field("Dataset", datasetControl as HTMLElement, { path: "data.dataset_id", hint: "Only validated datasets are listed." }),
          field("Image size (px)", input("data.image_size", "int", { min: 32, max: 2048 }), { path: "data.image_size", hint: "Square letterbox side. Small objects need enough pixels." }),
          field("Batch size", input("data.batch_size", "int", { min: 1, max: 1024 }), { path: "data.batch_size" }),
          field("Max training images", input("data.max_train_images", "optint", { min: 1, placeholder: "all" }), { path: "data.max_train_images", hint: "Cap for a quick trial run." }),
          field("Copy-paste small objects", input("data.augment.copy_paste", "bool"), { path: "data.augment.copy_paste", hint: "Augmentation that pastes small objects." }),
        )
      : emptyState("No dataset ready", "Upload a COCO or VOC dataset first; it is validated before it can be used.", h("a", { class: "btn btn-primary", href: "#/datasets" }, "Upload a dataset")),
  );

  // --- models ---------------------------------------------------------------------------------
  const modelsHost = h("div");
  const renderModels = () => {
    bindings.forEach((_, k) => k.startsWith("teacher.") || k.startsWith("student.") ? bindings.delete(k) : undefined);
    const teacherSelect = h(
      "select",
      {
        name: "teacher.teacher_id",
        onchange: (e: Event) => {
          clearError("teacher.teacher_id");
          const id = Number((e.target as HTMLSelectElement).value);
          const t = readyTeachers.find((x) => x.id === id);
          if (t) spec.teacher = { ...(spec.teacher ?? {}), teacher_id: t.id, arch: t.arch, fpn_channels: t.fpn_channels };
          else if (spec.teacher) spec.teacher.teacher_id = null;
          renderModels();
        },
      },
      h("option", { value: "" }, "— choose a teacher —"),
      readyTeachers.map((t) => h("option", { value: t.id, selected: spec.teacher?.teacher_id === t.id }, `${t.name} · ${archLabel(t.arch)}`)),
    );
    if (spec.kind === "teacher") {
      const teacherDefaults = catalog.defaults.teacher;
      spec.teacher = { arch: spec.teacher?.arch ?? teacherDefaults.arch, fpn_channels: (spec.teacher?.fpn_channels as number) ?? teacherDefaults.fpn_channels, teacher_id: null };
      replace(
        modelsHost,
        card(
          "Teacher to train",
          h(
            "div",
            { class: "grid" },
            field("Architecture", input("teacher.arch", "select", {}, catalog.architectures.teacher.map((a) => [a, archLabel(a)])), { path: "teacher.arch" }),
            field("FPN channels", input("teacher.fpn_channels", "int", { min: 8, max: 1024 }), { path: "teacher.fpn_channels" }),
          ),
          h("p", { class: "muted" }, "When it succeeds, the trained teacher appears under Teachers, ready to distil from."),
        ),
      );
      distillHost.hidden = true;
      return;
    }
    distillHost.hidden = false;
    replace(
      modelsHost,
      card(
        "Teacher and student",
        h(
          "div",
          { class: "grid" },
          field("Teacher", readyTeachers.length ? teacherSelect : h("div", { class: "muted" }, "No teacher ready. ", h("a", { href: "#/teachers" }, "Upload one"), " or ", h("a", { href: "#/new?kind=teacher" }, "train one"), "."), {
            path: "teacher.teacher_id",
            hint: spec.teacher?.arch ? `Architecture: ${archLabel(spec.teacher.arch)}, ${spec.teacher.fpn_channels ?? 256} FPN channels.` : undefined,
          }),
          field("Student architecture", input("student.arch", "select", {}, catalog.architectures.student.map((a) => [a, archLabel(a)])), { path: "student.arch" }),
          field("Student FPN channels", input("student.fpn_channels", "int", { min: 8, max: 1024 }), { path: "student.fpn_channels" }),
        ),
      ),
    );
  };

  // --- distillation ---------------------------------------------------------------------------
  const presetHost = h("div", { class: "presets", role: "radiogroup", "aria-label": "Distillation preset" });
  const weightsHost = h("div");
  const distillHost = h("div");
  const d = () => spec.distill as DistillSpec;

  const markPreset = () => {
    const current = detectPreset(catalog, d());
    presetHost.querySelectorAll<HTMLInputElement>("input[name=preset]").forEach((r) => (r.checked = r.value === current));
    presetHost.querySelector(".preset-custom")?.toggleAttribute("hidden", current !== "custom");
  };

  const renderWeights = () => {
    for (const k of [...bindings.keys()]) if (k.startsWith("distill.")) bindings.delete(k);
    replace(
      weightsHost,
      h(
        "div",
        { class: "grid" },
        field("λ KD (overall weight)", input("distill.lambda_kd", "number", { min: 0 }), { path: "distill.lambda_kd" }),
        field("Response KD weight", input("distill.response", "number", { min: 0 }), { path: "distill.response", hint: "Logit KD; 0 turns it off." }),
        field("Temperature", input("distill.temperature", "number", { min: 0.01 }), { path: "distill.temperature" }),
        field("KD warm-up steps", input("distill.warmup_steps", "int", { min: 0 }), { path: "distill.warmup_steps", hint: "Ramp λ KD from 0." }),
      ),
      h(
        "details",
        { class: "advanced", id: "advanced-weights", open: detectPreset(catalog, d()) === "custom" },
        h("summary", null, "Advanced: weight of each term at each level"),
        h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "table weights" },
            h("thead", null, h("tr", null, h("th", null, "Level"), h("th", null, "spatial α"), h("th", null, "semantic β"), h("th", null, "context γ"))),
            h(
              "tbody",
              null,
              catalog.levels.map((l) =>
                h(
                  "tr",
                  null,
                  h("th", { scope: "row" }, l.toUpperCase(), h("div", { class: "sub" }, `stride ${2 ** (Number(l.slice(1)))}${l === "p2" ? " · small objects" : ""}`)),
                  catalog.terms.map((t) =>
                    h(
                      "td",
                      { "data-path": `distill.levels.${l}.${t}` },
                      (() => {
                        const el = input(`distill.levels.${l}.${t}`, "number", { min: 0, "aria-label": `${t} weight at ${l.toUpperCase()}`, class: "small-input" });
                        return el;
                      })(),
                      h("div", { class: "field-error" }),
                    ),
                  ),
                ),
              ),
            ),
          ),
        ),
        h(
          "div",
          { class: "grid" },
          field("Foreground weight", input("distill.spatial.fg_weight", "number", { min: 0 }), { path: "distill.spatial.fg_weight" }),
          field("Background weight", input("distill.spatial.bg_weight", "number", { min: 0 }), { path: "distill.spatial.bg_weight" }),
          field("Scale-aware masks", input("distill.spatial.scale_aware", "bool"), { path: "distill.spatial.scale_aware", hint: "Weight small boxes up." }),
          field("Normalise features", input("distill.spatial.normalize", "bool"), { path: "distill.spatial.normalize" }),
          field("Attention exponent p", input("distill.semantic.p", "number", { min: 0.1 }), { path: "distill.semantic.p" }),
          field("Channel attention", input("distill.semantic.channel", "bool"), { path: "distill.semantic.channel" }),
          field("Global context", input("distill.context.global_context", "bool"), { path: "distill.context.global_context" }),
          field("Relation KD", input("distill.context.relation", "bool"), { path: "distill.context.relation" }),
          field("Relation grid", input("distill.context.relation_grid", "int", { min: 1, max: 32 }), { path: "distill.context.relation_grid" }),
        ),
      ),
    );
    markPreset();
  };

  replace(
    presetHost,
    catalog.presets.map((p) =>
      h(
        "label",
        { class: "preset" },
        h("input", {
          type: "radio",
          name: "preset",
          value: p.id,
          "data-preset": p.id,
          onchange: () => {
            spec.distill = applyPreset(catalog, d(), p.id);
            renderWeights();
          },
        }),
        h("span", { class: "preset-body" }, h("strong", null, p.label), h("span", { class: "sub" }, p.description)),
      ),
    ),
    h("label", { class: "preset preset-custom", hidden: true }, h("input", { type: "radio", name: "preset", value: "custom", disabled: true }), h("span", { class: "preset-body" }, h("strong", null, "Custom"), h("span", { class: "sub" }, "Your own weights."))),
  );
  replace(distillHost, card("Distillation", h("p", { class: "muted" }, "L = L_det + λ · Σ_levels (α·spatial + β·semantic + γ·context). Start from one of the paper's ablations:"), presetHost, weightsHost));
  renderWeights();
  renderModels();

  // --- schedule -------------------------------------------------------------------------------
  const scheduleCard = card(
    "Schedule",
    h(
      "div",
      { class: "grid" },
      field("Epochs", input("schedule.epochs", "int", { min: 0, max: 10000 }), { path: "schedule.epochs" }),
      field("Steps per epoch (max)", input("schedule.max_steps_per_epoch", "optint", { min: 1, placeholder: "all" }), { path: "schedule.max_steps_per_epoch", hint: "Cap for a quick run." }),
      field("Optimizer", input("schedule.optimizer", "select", {}, [["adamw", "AdamW"], ["sgd", "SGD"]]), { path: "schedule.optimizer" }),
      field("Learning rate", input("schedule.lr", "number", { min: 0 }), { path: "schedule.lr" }),
      field("LR schedule", input("schedule.lr_schedule", "select", {}, [["cosine", "Cosine"], ["step", "Step"], ["constant", "Constant"]]), { path: "schedule.lr_schedule" }),
      field("Warm-up steps", input("schedule.warmup_steps", "int", { min: 0 }), { path: "schedule.warmup_steps" }),
      field("Weight decay", input("schedule.weight_decay", "number", { min: 0 }), { path: "schedule.weight_decay" }),
      field("Evaluate every (epochs)", input("schedule.eval_every", "int", { min: 1 }), { path: "schedule.eval_every" }),
      field("Fine-tune epochs", input("schedule.finetune_epochs", "int", { min: 0 }), { path: "schedule.finetune_epochs", hint: "Third stage: labels only." }),
      field("Device", input("schedule.device", "select", {}, [["auto", "Auto"], ["cuda", "GPU (CUDA)"], ["cpu", "CPU"]]), { path: "schedule.device" }),
      field("Mixed precision", input("schedule.amp", "bool"), { path: "schedule.amp", hint: "On GPU only." }),
      field("Seed", input("seed", "int", { min: 0 }), { path: "seed" }),
    ),
  );

  const submit = h("button", { class: "btn btn-primary", type: "submit", id: "submit-job" }, "Start job");
  const form = h(
    "form",
    {
      class: "new-job",
      novalidate: true,
      onsubmit: async (e: Event) => {
        e.preventDefault();
        // The browser's own checks first (min/max/number), shown at the field.
        const local: FieldError[] = [];
        for (const [path, el] of bindings) {
          const control = el as HTMLInputElement;
          if (control.willValidate && !control.checkValidity()) local.push({ path, message: control.validationMessage });
        }
        if (!spec.data.dataset_id) local.push({ path: "data.dataset_id", message: "Choose a dataset." });
        if (spec.kind === "distill" && kdEnabled(d()) && !spec.teacher?.teacher_id) {
          local.push({ path: "teacher.teacher_id", message: "Distillation needs a trained teacher: choose one, or pick the No KD preset." });
        }
        if (local.length) {
          showErrors(local);
          return;
        }
        submit.disabled = true;
        submit.textContent = "Starting…";
        const payload: JobSpec = structuredClone(spec);
        if (payload.kind === "teacher") payload.student = null;
        payload.name = name.trim() || null;
        try {
          const job = await post<Job>("/jobs", { spec: payload, name: name.trim() || undefined });
          toast(`Job #${job.id} queued`, "success");
          navigate(`#/jobs/${job.id}`);
        } catch (err) {
          if (err instanceof ApiError && err.fields.length) showErrors(err.fields);
          else showErrors([{ path: "", message: (err as Error).message }]);
        } finally {
          submit.disabled = false;
          submit.textContent = "Start job";
        }
      },
    },
    summary,
    card("Job", h("div", { class: "grid" }, field("Name", nameInput, { path: "name", hint: "Optional; helps you find it in the history." }), field("Kind", kindRadios, { path: "kind" }))),
    dataCard,
    modelsHost,
    distillHost,
    scheduleCard,
    h("div", { class: "form-actions" }, submit, h("a", { class: "btn btn-ghost", href: "#/jobs" }, "Cancel")),
  );
  replace(main, pageHeader(source ? `New job from #${source.id}` : "New job", "Choose the data and models, the distillation weights and the schedule."), form);
}

