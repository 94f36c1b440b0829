#pragma once

namespace ngd {

// What a workload loads for its runs (a dataset: ImageDataset, TranslationDataset, a test's synthetic
// data). The runner holds it without knowing its type while a spec's runs of that workload go on; the
// workload's own code (harness/spec/workload_entry.h) reads it back as the type it loaded.
class WorkloadData {
 public:
  virtual ~WorkloadData() = default;
};

}  // namespace ngd
