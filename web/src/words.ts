// Errors in words a user understands: the worker's message, explained, with what to do next.

const RULES: [RegExp, string][] = [
  [/out of memory|CUDA error: out of memory|OOM/i, "The GPU ran out of memory. Lower the batch size or the image size, or choose a smaller teacher."],
  [/lease|heartbeat|worker (was )?lost|WorkerLost/i, "The worker running this job stopped answering (it may have restarted). Retry the job: it resumes from its last checkpoint."],
  [/cancel/i, "The job was canceled before it finished."],
  [/missing key|unexpected key|mis-?shaped|CheckpointMismatch|size mismatch/i, "The teacher checkpoint does not match the declared architecture. Check the architecture and FPN channels of the teacher, or upload the right file."],
  [/checkpoint|weights_only|pickle/i, "The checkpoint could not be loaded safely. Upload a safetensors file or a plain PyTorch state dict."],
  [/num_classes|number of classes|categories/i, "The teacher was trained on a different set of classes than this dataset."],
  [/no (such )?file|not found|does not exist/i, "A file the job needs is missing (the dataset or teacher may have been deleted). Re-upload it and retry."],
  [/nan|inf(inite)?\b|diverg/i, "Training diverged (the loss became NaN or infinite). Lower the learning rate or the distillation weights, or add warm-up steps."],
  [/time ?limit|timed out|timeout/i, "The job ran past its time limit. Reduce the epochs or steps per epoch."],
  [/invalid|validation/i, "The data or the spec is not valid; the message below says which part."],
];

/** A plain-language explanation of a job's error message (null if nothing fits). */
export function explainError(message: string | null | undefined): string | null {
  if (!message) return null;
  for (const [pattern, words] of RULES) {
    if (pattern.test(message)) return words;
  }
  return null;
}

/** The first line of an error, without a Python traceback's noise. */
export function errorHeadline(message: string): string {
  const lines = message.split("\n").map((l) => l.trim()).filter(Boolean);
  const last = lines.reverse().find((l) => /Error|Exception|:/.test(l));
  return (last ?? lines[0] ?? message).slice(0, 400);
}
