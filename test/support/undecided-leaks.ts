import type { UndecidedLeakBatch, UndecidedLeakSink } from '../../lambda/domain/leak-undecided';

/** An in-memory undecided-leaks queue for leak-handler tests that do not mock SQS: keeps every batch recorded. */
export class RecordedUndecidedLeaks implements UndecidedLeakSink {
  readonly batches: UndecidedLeakBatch[] = [];

  async record(batch: UndecidedLeakBatch): Promise<void> {
    this.batches.push(structuredClone(batch));
  }
}
