//! Offsets to commit after a batch of Kafka records, shared by the consumer loops.

use std::collections::BTreeMap;

use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};

/// One past the last record of each topic-partition in `batch`.
pub(crate) fn next_offsets(
    batch: &[OwnedMessage],
) -> Result<TopicPartitionList, rdkafka::error::KafkaError> {
    let mut last: BTreeMap<(String, i32), i64> = BTreeMap::new();
    for message in batch {
        let entry = last
            .entry((message.topic().to_owned(), message.partition()))
            .or_insert(message.offset());
        *entry = (*entry).max(message.offset());
    }
    let mut list = TopicPartitionList::new();
    for ((topic, partition), offset) in last {
        list.add_partition_offset(&topic, partition, Offset::Offset(offset + 1))?;
    }
    Ok(list)
}
