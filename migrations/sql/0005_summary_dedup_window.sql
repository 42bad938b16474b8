-- Insert deduplication for the summaries. The sink inserts into `spans` with an
-- `insert_deduplication_token` (topic, partition, offset range), so a retried insert is dropped
-- by `spans` (its `non_replicated_deduplication_window`). The materialized views push the
-- retried block to `traces` and `usage_hourly` regardless; each view's block carries an id
-- derived from the source block's, and a target table drops it only if it keeps a window of
-- recent block ids itself. Without these two settings a redelivered batch would be counted twice
-- in the summaries while `spans` stored it once (non-replicated tables keep no window by default).
ALTER TABLE traces MODIFY SETTING non_replicated_deduplication_window = 1000;
ALTER TABLE usage_hourly MODIFY SETTING non_replicated_deduplication_window = 1000;
