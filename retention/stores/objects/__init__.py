"""Object stores: S3 buckets and file trees, judged over their listings with the rules of SQL."""
