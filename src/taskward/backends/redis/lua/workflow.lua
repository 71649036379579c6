-- Workflow ARGV[2] as read_workflow answers it ({} if there is none).
return read_workflow(ARGV[2])
