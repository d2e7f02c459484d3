-- The compose file's second database: Dagster's runs, event logs and schedules.
create database dagster owner command_center;
