"""Layer 1, data: archives and the synthetic worlds turned into label maps, boxes and batches."""
