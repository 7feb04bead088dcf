"""The regional quality graph (区域质量大数据图谱) and its GB/T 2260-keyed map."""
