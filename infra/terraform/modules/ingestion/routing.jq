{
  destinationDatabaseName: "@RAW_DATABASE@",
  destinationTableName: (if ._leanops_table == "dlq_errors" then "dlq_errors" else (.topic_name + "_staging") end),
  operation: (if ._leanops_table == "dlq_errors" then "update" else "insert" end)
}
