// Teachers: upload a checkpoint with its architecture; rejected ones list the keys at fault.
import { get } from "../api";
import { h, replace } from "../dom";
import { archLabel, bytes, fullTime, relativeTime } from "../format";
import { href } from "../router";
import { loadSpecCatalog } from "../spec";
import type { ListOf, Teacher } from "../types";
import { issuesByFile } from "../components/issues";
import { card, emptyState, errorState, loading, pageHeader, stateBadge, toast } from "../components/ui";
import { uploadForm } from "../components/upload";
import { fieldTable } from "../components/fields";
import { apCell } from "../components/metric";
import { uploader } from "../users";
import type { CocoMetrics } from "../types";
import { appendName, deleteButton, listTable, namedField, num, poll } from "../components/uploaded";

/** The teacher list with its upload form; polls while a teacher is validating. */
export function renderTeachers(main: HTMLElement): () => void {
  const list = h("div", null, loading());
  const name = h("input", { type: "text", name: "name", required: true, maxlength: 200, placeholder: "e.g. r50-visdrone" });
  const arch = h("select", { name: "arch" });
  // The architectures core/spec.py accepts, as the server lists them.
  void loadSpecCatalog().then(
    (c) => replace(arch, ...c.architectures.teacher.map((a) => h("option", { value: a, title: a, selected: a === c.defaults.teacher.arch }, archLabel(a)))),
    (err: Error) => toast(`Architectures could not be loaded: ${err.message}`, "error"),
  );
  const channels = h("input", { type: "number", name: "fpn_channels", value: 256, min: 8, max: 1024, step: 1 });
  const nameField = namedField("Name", name, "name");
  const form = uploadForm<Teacher>({
    id: "teacher-upload",
    path: "/teachers",
    accept: ".safetensors,.pt,.pth,.bin",
    fileHint: "safetensors, or a PyTorch state dict (.pt/.pth, loaded with weights_only: no code runs).",
    fields: [nameField, namedField("Architecture", arch, "arch"), namedField("FPN channels", channels, "fpn_channels", "256 for torchvision's own detectors.")],
    collect: (data) => {
      const problem = appendName(data, name, nameField, "teacher");
      if (problem) return problem;
      data.append("arch", arch.value);
      data.append("fpn_channels", channels.value || "256");
      return null;
    },
    onDone: (row) => {
      toast(`Teacher “${row.name}” uploaded; checking its keys…`, "success");
      lister.refresh();
    },
  });
  replace(
    main,
    pageHeader("Teachers", "Frozen teacher detectors: uploaded checkpoints, or trained here.", h("a", { class: "btn", href: href("/new", { kind: "teacher" }) }, "Train a teacher")),
    card("Upload a teacher", form),
    list,
  );

  const lister = poll({
    fetch: () => get<ListOf<Teacher>>("/teachers", { limit: 200 }),
    render: (res) => {
      replace(
        list,
        res.data.length
          ? listTable(
              "teachers-table",
              ["Name", "Status", "Architecture", num("FPN"), num("Classes"), "Source", "Uploaded by", num("Size"), "Added"],
              res.data.map((t) =>
                h(
                  "tr",
                  { "data-teacher-id": t.id },
                  h("td", null, h("a", { href: `#/teachers/${t.id}` }, t.name)),
                  h("td", null, stateBadge(t.status)),
                  h("td", { title: t.arch }, archLabel(t.arch)),
                  h("td", { class: "num" }, String(t.fpn_channels)),
                  h("td", { class: "num" }, t.num_classes ? String(t.num_classes - 1) : "—"),
                  h("td", null, t.source_job_id ? h("a", { href: `#/jobs/${t.source_job_id}` }, `job #${t.source_job_id}`) : "upload"),
                  h("td", { class: "col-user" }, uploader(t.created_by)),
                  h("td", { class: "num" }, bytes(t.size_bytes)),
                  h("td", { title: fullTime(t.created_at) }, relativeTime(t.created_at)),
                ),
              ),
            )
          : emptyState("No teachers yet", "Upload a checkpoint above, or train one from a dataset.", h("a", { class: "btn", href: href("/new", { kind: "teacher" }) }, "Train a teacher")),
      );
      return res.data.some((t) => t.status === "validating");
    },
    fail: (message, retry) => replace(list, errorState(message, retry)),
    every: 2000,
  });
  return lister.stop;
}

/** One teacher: its details, or the keys that did not match its architecture. */
export function renderTeacher(main: HTMLElement, id: number): () => void {
  replace(main, loading());
  return poll({
    fetch: () => get<Teacher>(`/teachers/${id}`),
    render: (t) => {
      const info = (t.info ?? {}) as Record<string, unknown>;
      const metrics = (info.metrics ?? null) as { teacher?: CocoMetrics | null; student?: CocoMetrics | null } | null;
      const own = metrics?.teacher ?? metrics?.student ?? null;
      replace(
        main,
        pageHeader(
          h("span", null, t.name, " ", stateBadge(t.status)),
          `${archLabel(t.arch)} · ${t.fpn_channels} FPN channels · ${bytes(t.size_bytes)} · added ${relativeTime(t.created_at)}`,
          t.status === "ready" ? h("a", { class: "btn btn-primary", href: "#/new" }, "Distil from it") : null,
          deleteButton(`teacher “${t.name}”`, `/teachers/${t.id}`, "#/teachers"),
        ),
        t.status === "validating" ? card("Checking", loading("Loading the checkpoint safely and matching it to the architecture…")) : null,
        t.errors && t.errors.length ? card("Why it was rejected", issuesByFile(t.errors)) : null,
        card(
          "Details",
          h(
            "table",
            { class: "table fields-table", id: "teacher-summary" },
            h(
              "tbody",
              null,
              h("tr", null, h("th", { scope: "row" }, "Architecture"), h("td", { title: t.arch }, archLabel(t.arch))),
              h("tr", null, h("th", { scope: "row" }, "FPN channels"), h("td", null, String(t.fpn_channels))),
              // The checkpoint's heads count the background class; the dataset's classes do not.
              h("tr", { "data-field": "classes" }, h("th", { scope: "row" }, "Classes"), h("td", null, t.num_classes ? `${t.num_classes - 1} (+ background)` : "—")),
              h("tr", null, h("th", { scope: "row" }, "Source"), h("td", null, t.source_job_id ? h("a", { href: `#/jobs/${t.source_job_id}` }, `trained by job #${t.source_job_id}`) : "uploaded checkpoint")),
              h("tr", null, h("th", { scope: "row" }, "Uploaded by"), h("td", null, uploader(t.created_by))),
              h("tr", null, h("th", { scope: "row" }, "Size"), h("td", null, bytes(t.size_bytes))),
            ),
          ),
          Object.keys(info).length ? fieldTable("teacher-info", info, ["metrics", "num_classes", "source_job_id"]) : null,
        ),
        own
          ? card(
              "Evaluation",
              h(
                "table",
                { class: "table fields-table", id: "teacher-metrics" },
                h(
                  "tbody",
                  null,
                  (["AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large"] as const).map((k) => h("tr", { "data-metric": k }, h("th", { scope: "row" }, k.replace("_", " ")), h("td", { class: "num" }, apCell(own[k])))),
                  Object.entries(own.per_class ?? {}).map(([name, v]) => h("tr", { "data-class": name }, h("th", { scope: "row" }, `AP · ${name}`), h("td", { class: "num" }, apCell(v)))),
                ),
              ),
              h("p", { class: "muted" }, "COCO AP in percent; n/a: no object of this size in the evaluated images."),
            )
          : null,
      );
      return t.status === "validating";
    },
    fail: (message, retry) => replace(main, errorState(message, retry)),
    every: 1500,
  }).stop;
}
