{#- Reads fct_workflow_events so the dashboard's event charts never scan the event table at request time. -#}
{{ event_volume(ref('fct_workflow_events'), 'hour') }}
