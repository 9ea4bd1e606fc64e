#include "data/source_domains.h"

#include "data/token_shards.h"

namespace gemkit {

SourceDomains source_domains(const std::vector<std::string>& shards) {
  SourceDomains out;
  for (const std::string& s : shards) out.push_back(TokenShard(s).info().domain_names);
  return out;
}

std::vector<std::string> row_domains(const TokenBatch& batch, const SourceDomains& domains) {
  std::vector<std::string> out(size_t(batch.rows));
  for (int64_t i = 0; i < batch.rows; ++i) {
    const size_t src = size_t(batch.source_ids.at(size_t(i)));
    const int32_t dom = batch.domain_ids.at(size_t(i));
    if (src < domains.size() && dom >= 0 && size_t(dom) < domains[src].size()) out[size_t(i)] = domains[src][size_t(dom)];
  }
  return out;
}

}  // namespace gemkit
