// Names of the team's datasets and teachers, for tables that only hold their ids.
import { get } from "../api";
import type { Dataset, ListOf, Teacher } from "../types";

/** Datasets and teachers of the current team by id. */
export interface Lookups {
  datasets: Map<number, Dataset>;
  teachers: Map<number, Teacher>;
}

/** Loads the team's datasets and teachers (first 200 of each: enough to name table rows). */
export async function loadLookups(): Promise<Lookups> {
  const [datasets, teachers] = await Promise.all([
    get<ListOf<Dataset>>("/datasets", { limit: 200 }).catch(() => ({ data: [], count: 0 })),
    get<ListOf<Teacher>>("/teachers", { limit: 200 }).catch(() => ({ data: [], count: 0 })),
  ]);
  return {
    datasets: new Map(datasets.data.map((d) => [d.id, d])),
    teachers: new Map(teachers.data.map((t) => [t.id, t])),
  };
}
