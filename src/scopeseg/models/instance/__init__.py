"""Instance family: Mask2Former on our ImageNet encoders, MiniLM class-name conditioning (LEMIS), SiMaskFormer switches."""
