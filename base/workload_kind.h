#pragma once

namespace ngd {

// What a run trains: decides the dataset type, the models allowed, the metrics and the result fields.
enum class WorkloadKind {
  kImage,        // image classification (ImageDataset, Model)
  kTranslation,  // machine translation (TranslationDataset, TranslationModel)
};

}  // namespace ngd
