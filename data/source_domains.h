// Domain names of training rows. The loader's rows carry (source id, domain id): the index of
// the shard they came from and the domain index within that shard's own domain list. Methods
// that treat domains differently (SCAR's supervision, distillation on replay rows) turn the
// pair back into a name here.
#pragma once
#include <string>
#include <vector>

#include "data/batch.h"

namespace gemkit {

// The domain names of each training source (shard), by the shard's domain ids.
using SourceDomains = std::vector<std::vector<std::string>>;
SourceDomains source_domains(const std::vector<std::string>& shards);

// The domain name of each row of `batch` ("" when unknown).
std::vector<std::string> row_domains(const TokenBatch& batch, const SourceDomains& domains);

}  // namespace gemkit
