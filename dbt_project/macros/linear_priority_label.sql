{#- Linear's priority number as its label (0 none, 1 urgent, 2 high, 3 medium, 4 low). -#}
{% macro linear_priority_label(priority) -%}
    case {{ priority }}
        when 0 then 'none'
        when 1 then 'urgent'
        when 2 then 'high'
        when 3 then 'medium'
        when 4 then 'low'
    end
{%- endmacro %}
